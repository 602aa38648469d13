/*
 * runner.c — executes a suite's experiments. See suite.h.
 *
 * Schedule. Sequential (default): each experiment runs its warm-ups then
 * its repetitions, and is stored at once. --interleave: repetitions go in
 * rounds; round r runs repetition r of every experiment that has one, in
 * an order shuffled by a PRNG seeded from --seed (an experiment's warm-ups
 * run just before its first repetition), so slow drifts of the machine
 * (thermal, other tenants) spread over all experiments instead of biasing
 * the last ones. An experiment is stored when its last repetition is done;
 * with --interleave a crash loses every experiment still in flight.
 *
 * Per repetition the runner measures wall time (CLOCK_MONOTONIC) and CPU
 * time (getrusage of the process and its waited-for children) around the
 * kind's run() and records them as wall_ms and cpu_ms unless the kind
 * recorded its own. Summaries are over measured repetitions only.
 *
 * The signal state (sig) is the one file-scope mutable variable: a signal
 * handler cannot reach a context struct.
 */
#include "harness/suite/suite.h"

#include "harness/db/db.h"
#include "metrics/stats.h"

#include <fnmatch.h>
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static struct {
    volatile sig_atomic_t stop;
    lua_State *volatile L;
} sig;

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_where(L, 0); /* in a hook, level 0 is the interrupted Lua function */
    lua_pushstring(L, "interrupted");
    lua_concat(L, 2);
    lua_error(L);
}

static void on_signal(int signo)
{
    if (sig.stop) {
        signal(signo, SIG_DFL);
        raise(signo);
        return;
    }
    sig.stop = 1;
    if (sig.L) /* lua_sethook is safe to call from a signal handler */
        lua_sethook(sig.L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

typedef struct exp_state {
    hx_suite_experiment *e;
    hx_db_result *reps;     /* [e->reps], measured repetitions               */
    int done;            /* measured repetitions finished                 */
    int failed, stored, interrupted;
    char *error;
    double t0, t1;       /* wall clock (epoch seconds) of first/last call  */
} exp_state;

#define MAX_KINDS 16

typedef struct kind_state {
    const hx_suite_kind *kind;
    void *kctx;          /* from kind->init                               */
} kind_state;

typedef struct runner {
    const hx_suite_run_opts *o;
    kind_state kinds[MAX_KINDS]; /* kinds initialised in this run           */
    int nkinds;
    hx_suite *s;
    hx_db *db;
    int64_t run_id;
    exp_state *xs;
    int n;
    long steps_total, steps_done;
    double t_start;
    int tty;
    uint64_t rng;
    hx_suite_run_outcome *out;
} runner;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double epoch_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    getrusage(RUSAGE_CHILDREN, &b);
    return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
                    b.ru_stime.tv_sec) +
           (a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec + b.ru_stime.tv_usec) /
               1e6;
}

/* splitmix64: seeds per repetition and the interleaving shuffle. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int hx_suite_runner_in_shard(int k, int shard_i, int shard_n)
{
    return shard_n <= 0 || k % shard_n == shard_i - 1;
}

static int selected(const hx_suite_run_opts *o, const hx_suite_experiment *e)
{
    const char *f = o->filter;
    if (!f || !*f)
        return 1;
    if (strpbrk(f, "*?["))
        return fnmatch(f, e->label, 0) == 0;
    return strstr(e->label, f) != NULL;
}

/* ---- progress --------------------------------------------------------- */

static void progress(runner *rn, int i, const exp_state *x, int rep, int warm)
{
    if (!rn->tty || rn->o->quiet)
        return;
    double el = mono_s() - rn->t_start;
    double eta = rn->steps_done ? el / (double)rn->steps_done *
                                      (double)(rn->steps_total - rn->steps_done) : 0;
    fprintf(stderr, "\r\033[K[%d/%d] %.50s %s %d/%d  elapsed %d:%02d  ETA %d:%02d", i + 1,
            rn->n, x->e->label, warm ? "warm-up" : "rep", warm ? rep + x->e->warmup + 1 : rep + 1,
            warm ? x->e->warmup : x->e->reps, (int)el / 60, (int)el % 60, (int)eta / 60,
            (int)eta % 60);
}

static void progress_clear(runner *rn)
{
    if (rn->tty && !rn->o->quiet)
        fprintf(stderr, "\r\033[K");
}

/* ---- one repetition ----------------------------------------------------- */

/* msg is the one-line cause (and for commands a "command: ..." line);
 * detail (may be NULL) the kind's full diagnostic. */
static void fail_exp(exp_state *x, const char *msg, const char *detail)
{
    x->failed = 1;
    free(x->error);
    size_t n = strlen(msg) + (detail ? strlen(detail) + 2 : 1);
    if ((x->error = malloc(n)))
        snprintf(x->error, n, "%s%s%s", msg, detail ? "\n" : "", detail ? detail : "");
}

/* The kind's per-run context, initialised on first use. */
static int kind_ctx(runner *rn, const hx_suite_kind *k, void **kctx, eng_err *err)
{
    *kctx = NULL;
    for (int i = 0; i < rn->nkinds; i++)
        if (rn->kinds[i].kind == k) {
            *kctx = rn->kinds[i].kctx;
            return ENG_OK;
        }
    if (!k->init)
        return ENG_OK;
    if (rn->nkinds == MAX_KINDS)
        return eng_err_set(err, ENG_ESTATE, "more than %d kinds with a context", MAX_KINDS);
    int rc = k->init(kctx, err);
    if (rc)
        return eng_err_prefix(err, "initialising kind '%s'", k->name);
    rn->kinds[rn->nkinds++] = (kind_state){k, *kctx};
    return ENG_OK;
}

/* rep: 0..reps-1 measured, negative for warm-ups. Returns 0 on success. */
static int run_rep(runner *rn, int i, exp_state *x, int rep)
{
    const hx_suite_run_opts *o = rn->o;
    int warm = rep < 0;
    uint64_t sd = o->seed ^ ((uint64_t)x->e->seq << 32) ^ (uint64_t)(uint32_t)rep;
    hx_suite_exec ex = {.exp = x->e, .rep = rep, .is_warmup = warm, .seed = splitmix(&sd) >> 1,
                  .opts = rn->s->opts, .L = rn->s->L, .self_exe = o->self_exe,
                  .timeout_s = o->timeout_s};
    char *detail = NULL, dir[4096];
    const char *slash = strrchr(rn->s->file, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - rn->s->file) : 1,
             slash ? rn->s->file : ".");
    ex.detail = &detail;
    ex.suite_dir = dir;
    hx_db_result tmp = {0};
    hx_db_result *res = warm ? &tmp : &x->reps[rep];
    progress(rn, i, x, rep, warm);
    if (x->t0 == 0)
        x->t0 = epoch_s();
    eng_err err = {0};
    int rc = kind_ctx(rn, x->e->kind, &ex.kctx, &err);
    double c0 = cpu_s(), w0 = mono_s();
    if (!rc)
        rc = x->e->kind->run(&ex, res, &err);
    double w1 = mono_s(), c1 = cpu_s();
    x->t1 = epoch_s();
    if (!rc && isnan(hx_db_result_get(res, "wall_ms")))
        rc = hx_db_result_sample(res, "wall_ms", (w1 - w0) * 1e3, &err);
    if (!rc && isnan(hx_db_result_get(res, "cpu_ms")))
        rc = hx_db_result_sample(res, "cpu_ms", (c1 - c0) * 1e3, &err);
    hx_db_result_clear(&tmp);
    rn->steps_done++;
    if (sig.stop) {
        x->interrupted = 1;
        return -1;
    }
    if (rc)
        fail_exp(x, err.msg, detail);
    free(detail);
    if (rc)
        return -1;
    if (!warm)
        x->done++;
    return 0;
}

/* ---- storing and reporting ---------------------------------------------- */

static int store_exp(runner *rn, exp_state *x, eng_err *err)
{
    if (x->stored || x->interrupted)
        return ENG_OK;
    x->stored = 1;
    if (x->failed) {
        progress_clear(rn);
        /* the cause, and the command when there is one (the rest, a
         * command's stderr, is in experiment.error) */
        const char *m = x->error ? x->error : "out of memory", *nl = strchr(m, '\n');
        fprintf(stderr, "moebench run: experiment '%s' failed: %.*s\n", x->e->label,
                nl ? (int)(nl - m) : (int)strlen(m), m);
        if (nl && !strncmp(nl + 1, "command: ", 9))
            fprintf(stderr, "  %.*s\n", (int)strcspn(nl + 1, "\n"), nl + 1);
        rn->out->failed++;
    } else {
        rn->out->ok++;
    }
    if (!rn->db)
        return ENG_OK;
    const hx_suite_experiment *e = x->e;
    hx_db_experiment de = {.seq = e->seq, .name = e->name, .label = e->label,
                           .kind = e->kind->name, .file_line = e->file_line,
                           .params = e->params, .args = e->args, .events = e->events,
                           .tags = e->tags, .warmup = e->warmup, .reps = e->reps,
                           .directions = e->directions};
    memcpy(de.uuid, e->uuid, sizeof de.uuid);
    return hx_db_experiment_store(rn->db, rn->run_id, &de, x->failed ? "failed" : "ok",
                                  x->error, x->reps, x->done, x->t0, x->t1, err);
}

/* summary of each metric over the stored repetitions, as JSON. */
static json_t *summaries(const exp_state *x)
{
    json_t *sum = json_object();
    double *v = malloc((size_t)(x->done ? x->done : 1) * sizeof *v);
    for (int r = 0; v && r < x->done; r++)
        for (size_t i = 0; i < x->reps[r].nsamples; i++) {
            const char *m = x->reps[r].samples[i].metric;
            if (json_object_get(sum, m))
                continue;
            size_t n = 0;
            for (int q = r; q < x->done; q++)
                if (!isnan(hx_db_result_get(&x->reps[q], m)))
                    v[n++] = hx_db_result_get(&x->reps[q], m);
            met_summary s;
            eng_err err = {0};
            if (met_stats_summarize(v, n, &s, &err))
                continue;
            json_t *o = json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "n",
                                  (json_int_t)s.n, "mean", s.mean, "median", s.median, "min",
                                  s.min, "max", s.max, "stddev", s.stddev, "p90", s.p90, "p99",
                                  s.p99);
            if (!isnan(s.ci_lo)) {
                json_object_set_new(o, "ci_lo", json_real(s.ci_lo));
                json_object_set_new(o, "ci_hi", json_real(s.ci_hi));
            }
            json_object_set_new(sum, m, o);
        }
    free(v);
    return sum;
}

static json_t *results_json(const runner *rn)
{
    json_t *a = json_array();
    for (int i = 0; i < rn->n; i++) {
        const exp_state *x = &rn->xs[i];
        if (!x->stored)
            continue;
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:O, s:s, s:s?, s:i, s:o}", "name",
                              x->e->name, "label", x->e->label, "kind", x->e->kind->name,
                              "params", x->e->params, "status", x->failed ? "failed" : "ok",
                              "error", x->error, "reps", x->done, "summary", summaries(x)));
    }
    return a;
}

static void print_cell(const json_t *m)
{
    if (!m) {
        printf(" %22s", "-");
        return;
    }
    char buf[64];
    double mean = json_real_value(json_object_get(m, "mean"));
    const json_t *hi = json_object_get(m, "ci_hi");
    if (hi && json_real_value(hi) - mean > 0)
        snprintf(buf, sizeof buf, "%.4g ± %.2g", mean, json_real_value(hi) - mean);
    else
        snprintf(buf, sizeof buf, "%.4g", mean);
    printf(" %22s", buf);
}

/* The default comparison: one row per experiment, mean ± 95 % CI
 * half-width of up to six metrics (first seen first). */
/* Column order: by name, wall_ms and cpu_ms last (the runner's own
 * timings), so identical runs print identical tables whatever order a Lua
 * table's pairs() gave the metrics in. */
static int col_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int tx = !strcmp(x, "wall_ms") ? 2 : !strcmp(x, "cpu_ms") ? 3 : 1;
    int ty = !strcmp(y, "wall_ms") ? 2 : !strcmp(y, "cpu_ms") ? 3 : 1;
    return tx != ty ? tx - ty : strcmp(x, y);
}

#define REPORT_COLS 6

static void default_report(const json_t *res)
{
    json_t *names = json_object(); /* every metric of every experiment, once */
    int w = 10;
    size_t i;
    json_t *r;
    json_array_foreach(res, i, r) {
        int len = (int)strlen(json_string_value(json_object_get(r, "label")));
        w = len > w ? (len > 50 ? 50 : len) : w;
        json_object_update(names, json_object_get(r, "summary"));
    }
    size_t nall = json_object_size(names), k = 0;
    const char **all = malloc((nall ? nall : 1) * sizeof *all), *cols[REPORT_COLS];
    const char *key;
    json_t *v;
    json_object_foreach(names, key, v) {
        if (all)
            all[k++] = key;
    }
    if (all)
        qsort(all, k, sizeof *all, col_cmp);
    /* the first metrics by name, then the timings: both always fit */
    int nc = 0, ntime = 0;
    for (size_t j = 0; j < k; j++)
        ntime += !strcmp(all[j], "wall_ms") || !strcmp(all[j], "cpu_ms");
    for (size_t j = 0; j < k && nc < REPORT_COLS; j++) {
        int timing = !strcmp(all[j], "wall_ms") || !strcmp(all[j], "cpu_ms");
        if (timing || nc < REPORT_COLS - ntime)
            cols[nc++] = all[j];
    }
    printf("\n%-*s %-6s", w, "experiment", "status");
    for (int c = 0; c < nc; c++)
        printf(" %22.22s", cols[c]);
    printf("\n");
    json_array_foreach(res, i, r) {
        printf("%-*.*s %-6s", w, w, json_string_value(json_object_get(r, "label")),
               json_string_value(json_object_get(r, "status")));
        for (int c = 0; c < nc; c++)
            print_cell(json_object_get(json_object_get(r, "summary"), cols[c]));
        printf("\n");
    }
    printf("(mean ± half-width of the 95%% confidence interval over repetitions)\n");
    if (k > (size_t)nc)
        printf("(%zu more metrics: moebench query \"select * from experiment_wide\" or"
               " moebench report)\n", k - (size_t)nc);
    free(all);
    json_decref(names);
}

/* ---- schedules ---------------------------------------------------------- */

static int warmups(runner *rn, int i)
{
    exp_state *x = &rn->xs[i];
    for (int w = -x->e->warmup; w < 0; w++)
        if (run_rep(rn, i, x, w))
            return -1;
    return 0;
}

static int sequential(runner *rn, eng_err *err)
{
    for (int i = 0; i < rn->n && !sig.stop; i++) {
        exp_state *x = &rn->xs[i];
        if (!warmups(rn, i))
            for (int r = 0; r < x->e->reps && !run_rep(rn, i, x, r); r++)
                ;
        int rc = store_exp(rn, x, err);
        if (rc)
            return rc;
        if (x->failed && rn->o->fail_fast)
            break;
    }
    return ENG_OK;
}

static int interleaved(runner *rn, eng_err *err)
{
    int maxreps = 0;
    for (int i = 0; i < rn->n; i++)
        maxreps = rn->xs[i].e->reps > maxreps ? rn->xs[i].e->reps : maxreps;
    int *order = calloc((size_t)(rn->n > 0 ? rn->n : 1), sizeof *order);
    if (!order)
        return eng_err_set(err, ENG_ENOMEM, "out of memory scheduling");
    int rc = ENG_OK, stop = 0;
    for (int round = 0; round < maxreps && !rc && !stop && !sig.stop; round++) {
        int m = 0;
        for (int i = 0; i < rn->n; i++)
            if (!rn->xs[i].failed && rn->xs[i].e->reps > round)
                order[m++] = i;
        for (int j = m - 1; j > 0; j--) { /* Fisher-Yates */
            int k = (int)(splitmix(&rn->rng) % (uint64_t)(j + 1));
            int t = order[j];
            order[j] = order[k], order[k] = t;
        }
        for (int j = 0; j < m && !rc && !stop && !sig.stop; j++) {
            exp_state *x = &rn->xs[order[j]];
            if (round > 0 || !warmups(rn, order[j]))
                run_rep(rn, order[j], x, round);
            if (x->failed || x->done == x->e->reps)
                rc = store_exp(rn, x, err);
            stop = x->failed && rn->o->fail_fast;
        }
    }
    free(order);
    return rc;
}

/* ---- set-up --------------------------------------------------------------- */

static int load(const char *file, const hx_suite_run_opts *o, hx_suite_config *cfg, int help,
                hx_suite **s, eng_err *err)
{
    *cfg = (hx_suite_config){.defines = o->defines, .quick = o->quick, .seed = o->seed,
                             .help_only = help, .dry_run = o->dry_run,
                             .self_exe = o->self_exe};
    return hx_suite_load(s, file, cfg, err);
}

int hx_suite_runner_help_suite(const char *file, const hx_suite_run_opts *o, eng_err *err)
{
    hx_suite_config cfg;
    hx_suite *s;
    int rc = load(file, o, &cfg, 1, &s, err);
    if (rc)
        return rc;
    hx_suite_print_help(s);
    hx_suite_free(s);
    return ENG_OK;
}

static int select_all(runner *rn, eng_err *err)
{
    const hx_suite_run_opts *o = rn->o;
    rn->xs = calloc(rn->s->nexps + 1, sizeof *rn->xs);
    if (!rn->xs)
        return eng_err_set(err, ENG_ENOMEM, "out of memory");
    int k = 0, matched = 0;
    for (size_t i = 0; i < rn->s->nexps; i++) {
        hx_suite_experiment *e = &rn->s->exps[i];
        matched += selected(o, e);
        if (!selected(o, e) || !hx_suite_runner_in_shard(k++, o->shard_i, o->shard_n))
            continue;
        if (o->reps >= 1)
            e->reps = o->reps;
        if (o->warmup >= 0)
            e->warmup = o->warmup;
        exp_state *x = &rn->xs[rn->n++];
        x->e = e;
        x->reps = calloc((size_t)e->reps, sizeof *x->reps);
        if (!x->reps)
            return eng_err_set(err, ENG_ENOMEM, "out of memory");
        rn->steps_total += e->reps + e->warmup;
    }
    rn->out->declared = (int)rn->s->nexps;
    rn->out->selected = rn->n;
    /* an empty run would become "latest" and hide the last real one */
    if (!matched && o->filter && *o->filter)
        return eng_err_set(err, ENG_EINVAL, "--filter '%s' matches none of the %d experiments"
                           " of %s (labels: %s%s); nothing run, nothing stored", o->filter,
                           (int)rn->s->nexps, rn->s->file,
                           rn->s->nexps ? rn->s->exps[0].label : "none",
                           rn->s->nexps > 1 ? ", ..." : "");
    return ENG_OK;
}

static void dry_run(const runner *rn)
{
    printf("suite %s (%s): %d of %d experiments selected\n", rn->s->name, rn->s->file, rn->n,
           (int)rn->s->nexps);
    char *opts = json_dumps(rn->s->opts, JSON_COMPACT | JSON_SORT_KEYS);
    printf("options: %s\n", opts ? opts : "{}");
    free(opts);
    for (int i = 0; i < rn->n; i++) {
        const hx_suite_experiment *e = rn->xs[i].e;
        char *args = json_dumps(e->args, JSON_COMPACT | JSON_SORT_KEYS);
        char *ev = json_dumps(e->events, JSON_COMPACT);
        printf("%4d  %-44s kind=%s warmup=%d reps=%d events=%s %s  (%s)\n", e->seq + 1,
               e->label, e->kind->name, e->warmup, e->reps, ev ? ev : "[]",
               args && strcmp(args, "{}") ? args : "", e->file_line);
        free(args);
        free(ev);
    }
}

static json_t *cli_json(const hx_suite_run_opts *o)
{
    json_t *argv = json_array();
    for (int i = 0; i < o->argc; i++)
        json_array_append_new(argv, json_string(o->argv[i]));
    json_t *cli = json_pack("{s:o, s:I, s:s?, s:i, s:i, s:i, s:i, s:i}", "argv", argv, "seed",
                            (json_int_t)o->seed, "filter", o->filter, "shard_i", o->shard_i,
                            "shard_n", o->shard_n, "quick", o->quick, "interleave",
                            o->interleave, "fail_fast", o->fail_fast);
    json_t *slurm = hx_suite_slurm_placement();
    if (cli && slurm)
        json_object_set_new(cli, "slurm", slurm);
    else
        json_decref(slurm);
    return cli;
}

static int begin_run(runner *rn, const char *file, eng_err *err)
{
    int rc = hx_db_open(&rn->db, rn->o->db_path, HX_DB_CREATE, err);
    if (rc)
        return rc;
    hx_db_run_info ri = {.suite = rn->s->name, .file = file, .options = rn->s->opts,
                      .cli = cli_json(rn->o), .machine = hx_suite_env_machine(),
                      .build = hx_suite_env_build()};
    hx_db_uuid_new(ri.uuid);
    memcpy(rn->out->run_uuid, ri.uuid, sizeof ri.uuid);
    rc = hx_db_run_begin(rn->db, &ri, &rn->run_id, err);
    rn->out->run_id = rn->run_id;
    json_decref(ri.cli), json_decref(ri.machine), json_decref(ri.build);
    return rc;
}

static int execute(runner *rn, eng_err *err)
{
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sig.stop = 0;
    sig.L = rn->s->L;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rn->t_start = mono_s();
    int rc = rn->o->interleave ? interleaved(rn, err) : sequential(rn, err);
    progress_clear(rn);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sig.L = NULL;
    lua_sethook(rn->s->L, NULL, 0, 0);
    rn->out->interrupted = sig.stop != 0;
    const char *status = rn->out->interrupted ? "interrupted"
                         : rc || rn->out->failed ? "failed" : "ok";
    eng_err e2 = {0};
    int rc2 = hx_db_run_finish(rn->db, rn->run_id, status, rc ? &e2 : err);
    return rc ? rc : rc2;
}

/* "moebench" when that name on PATH is this binary, else this binary's
 * path: the hint must work when pasted. */
static const char *how_to_call(const char *self, char *buf, size_t cap)
{
    char real_self[PATH_MAX], cand[PATH_MAX], real_cand[PATH_MAX];
    const char *path = getenv("PATH");
    if (!self || !realpath(self, real_self))
        return "moebench";
    for (const char *p = path ? path : ""; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(cand, sizeof cand, "%.*s/moebench", (int)n, p);
        if (n && access(cand, X_OK) == 0 && realpath(cand, real_cand))
            return !strcmp(real_cand, real_self) ? "moebench" : (snprintf(buf, cap, "%s", self), buf);
        p += n + (p[n] == ':');
    }
    snprintf(buf, cap, "%s", self);
    return buf;
}

static void finish_report(runner *rn)
{
    json_t *res = results_json(rn);
    eng_err err = {0};
    if (rn->s->report_ref != LUA_NOREF) {
        if (hx_suite_report(rn->s, res, &err))
            fprintf(stderr, "moebench run: %s\n", err.msg);
    } else if (json_array_size(res)) {
        default_report(res);
    }
    json_decref(res);
    printf("\nrun %lld (%s) stored in %s: %d ok, %d failed%s\n", (long long)rn->run_id,
           rn->out->run_uuid, rn->o->db_path, rn->out->ok, rn->out->failed,
           rn->out->interrupted ? ", interrupted" : "");
    char me[4096];
    printf("explore it: %s query --db %s \"select label, status, means from"
           " experiment_wide where run_id = %lld\"\n", how_to_call(rn->o->self_exe, me, sizeof me),
           rn->o->db_path, (long long)rn->run_id);
}

static void cleanup(runner *rn)
{
    for (int i = 0; i < rn->n; i++) {
        for (int r = 0; r < rn->xs[i].e->reps; r++)
            hx_db_result_clear(&rn->xs[i].reps[r]);
        free(rn->xs[i].reps);
        free(rn->xs[i].error);
    }
    free(rn->xs);
    for (int k = 0; k < rn->nkinds; k++)
        if (rn->kinds[k].kind->fini)
            rn->kinds[k].kind->fini(rn->kinds[k].kctx);
    hx_db_close(rn->db);
}

int hx_suite_runner_run(const char *file, const hx_suite_run_opts *o, hx_suite_run_outcome *out, eng_err *err)
{
    memset(out, 0, sizeof *out);
    hx_suite_config cfg;
    hx_suite *s;
    int rc = load(file, o, &cfg, 0, &s, err);
    if (rc)
        return rc;
    rc = hx_suite_runner_run_suite(s, file, o, out, err);
    hx_suite_free(s);
    return rc;
}

int hx_suite_runner_count(const char *file, const hx_suite_run_opts *o, int *n, eng_err *err)
{
    hx_suite_run_opts dry = *o;
    dry.dry_run = 1;
    hx_suite_config cfg;
    hx_suite *s;
    int rc = load(file, &dry, &cfg, 0, &s, err);
    if (rc)
        return rc;
    *n = 0;
    for (size_t i = 0; i < s->nexps; i++)
        *n += selected(o, &s->exps[i]);
    hx_suite_free(s);
    return ENG_OK;
}

int hx_suite_runner_run_suite(hx_suite *s, const char *file, const hx_suite_run_opts *o,
                        hx_suite_run_outcome *out, eng_err *err)
{
    memset(out, 0, sizeof *out);
    runner rn = {.o = o, .out = out, .tty = isatty(2), .rng = o->seed ^ 0x5eedull, .s = s};
    int rc = select_all(&rn, err);
    if (!rc && o->dry_run) {
        dry_run(&rn);
    } else if (!rc && o->prepare) {
        printf("suite %s (%s) loaded: %d of %d experiments selected; the models and traces"
               " it makes on first use are in place; nothing run, nothing stored\n",
               s->name, file, rn.n, (int)s->nexps);
    } else if (!rc && !(rc = begin_run(&rn, file, err))) {
        rc = execute(&rn, err);
        if (!rc && !out->interrupted)
            finish_report(&rn);
    }
    fflush(stdout);
    cleanup(&rn);
    return rc;
}
