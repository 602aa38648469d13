/*
 * counters.c — the backend-independent part of met_counters: opening from
 * names, lists and presets, per-thread handles, reading clocks and rusage.
 * See counters.h for the contract and docs/counters.md for the user view.
 *
 * Per-thread handles: a pthread key in the context maps a thread to its
 * handle; the first met_counters_thread_get on a thread makes the handle,
 * asks the backend for the thread's own event set and links the handle into
 * the context's list (under mu). The key's destructor stops and frees the
 * set when the thread exits; the handle itself stays on the list until
 * met_counters_free, so readers never chase freed memory.
 *
 * A thread whose set cannot be made still gets a handle (ok = 0): clocks and
 * rusage keep working and the failure is counted, not fatal, because losing
 * one loader thread's counters must not stop a benchmark.
 */
#include "metrics/counters_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- presets ---------------------------------------------------------- */

static const char *const preset_default[] = {
    "PAPI_TOT_INS", "PAPI_TOT_CYC", "perf::TASK-CLOCK", "perf::PAGE-FAULTS",
    "perf::CONTEXT-SWITCHES", "perf::CPU-MIGRATIONS",
};
static const char *const preset_cache[] = {
    "PAPI_TOT_INS", "PAPI_TOT_CYC", "PAPI_L1_DCM", "PAPI_L2_TCM", "PAPI_L3_TCM", "PAPI_TLB_DM",
};
static const char *const preset_branch[] = {
    "PAPI_TOT_INS", "PAPI_TOT_CYC", "PAPI_BR_INS", "PAPI_BR_MSP", "PAPI_BR_CN",
};
static const char *const preset_software[] = {
    "perf::TASK-CLOCK",       "perf::PAGE-FAULTS",     "perf::MINOR-FAULTS",
    "perf::MAJOR-FAULTS",     "perf::CONTEXT-SWITCHES", "perf::CPU-MIGRATIONS",
};

static const struct {
    const char *name;
    const char *const *events;
    size_t n;
} presets[] = {
    {"default", preset_default, sizeof preset_default / sizeof *preset_default},
    {"cache", preset_cache, sizeof preset_cache / sizeof *preset_cache},
    {"branch", preset_branch, sizeof preset_branch / sizeof *preset_branch},
    {"software", preset_software, sizeof preset_software / sizeof *preset_software},
};
enum { NPRESETS = sizeof presets / sizeof *presets };

const char *met_preset_name(size_t i)
{
    return i < NPRESETS ? presets[i].name : NULL;
}

int met_preset_events(const char *preset, const char *const **names, size_t *n, eng_err *err)
{
    for (size_t i = 0; i < NPRESETS; i++)
        if (preset && !strcmp(preset, presets[i].name)) {
            *names = presets[i].events;
            *n = presets[i].n;
            return ENG_OK;
        }
    return eng_err_set(err, ENG_EINVAL,
                       "unknown event preset '%s' (known: default, cache, branch, software)",
                       preset ? preset : "(null)");
}

/* ---- status bookkeeping shared with the backends ---------------------- */

void met_counters_keep(met_counters *c, size_t req_index, const char *via)
{
    met_event_status *s = &c->req[req_index];
    s->active = 1;
    s->slot = (int)c->n;
    snprintf(s->via, sizeof s->via, "%s", via ? via : "");
    s->reason[0] = '\0';
    c->req_of[c->n++] = (int)req_index;
}

void met_counters_drop(met_counters *c, size_t req_index, const char *fmt, ...)
{
    met_event_status *s = &c->req[req_index];
    s->active = 0;
    s->slot = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->reason, sizeof s->reason, fmt, ap);
    va_end(ap);
}

/* ---- open / free ------------------------------------------------------ */

static void thread_detach(met_counters_thread *t, int thread_exiting)
{
    if (t->detached)
        return;
    if (t->c->backend == MET_BACKEND_PAPI)
        met_counters_detach_papi(t, thread_exiting);
    else
        met_counters_detach_perf(t);
    t->detached = 1;
}

/* pthread key destructor: the thread is exiting, its set goes with it. */
static void thread_exit(void *p)
{
    thread_detach(p, 1);
}

static int check_names(const char *const *names, size_t n, eng_err *err)
{
    if (n > MET_COUNTERS_MAX)
        return eng_err_set(err, ENG_EINVAL, "too many events: %zu (at most %d per set)", n,
                           MET_COUNTERS_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!names[i] || !names[i][0])
            return eng_err_set(err, ENG_EINVAL, "empty event name (event %zu)", i + 1);
        if (strlen(names[i]) >= sizeof ((met_event_status *)0)->name)
            return eng_err_set(err, ENG_EINVAL, "event name too long: '%.60s...'", names[i]);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(names[i], names[j]))
                return eng_err_set(err, ENG_EINVAL, "event '%s' asked for twice", names[i]);
    }
    return ENG_OK;
}

static int resolve_backend(met_counters *c, const met_counters_opts *o, eng_err *err)
{
    char why[256] = "";
    met_backend b = o ? o->backend : MET_BACKEND_AUTO;
    c->papi_cidx = -1;
    if (b == MET_BACKEND_PERF) { /* forced: PAPI is not even initialised */
        c->backend = b;
        return ENG_OK;
    }
    int usable = met_counters_papi_usable(c->multiplex, &c->papi_cidx, why, sizeof why);
    if (b == MET_BACKEND_PAPI && !usable)
        return eng_err_set(err, ENG_EUNSUPPORTED, "PAPI backend unavailable: %s", why);
    if (b == MET_BACKEND_AUTO && !usable) {
        b = MET_BACKEND_PERF;
        snprintf(c->backend_note, sizeof c->backend_note, "%s; using perf_event_open", why);
    }
    if (b == MET_BACKEND_AUTO)
        b = MET_BACKEND_PAPI;
    c->backend = b;
    return ENG_OK;
}

int met_counters_open(met_counters **out, const char *const *names, size_t n,
                      const met_counters_opts *opts, eng_err *err)
{
    *out = NULL;
    int rc = check_names(names, n, err);
    if (rc)
        return rc;
    met_counters *c = calloc(1, sizeof *c);
    if (!c)
        return eng_err_set(err, ENG_ENOMEM, "out of memory opening counters");
    c->multiplex = opts && opts->multiplex;
    c->n_req = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(c->req[i].name, sizeof c->req[i].name, "%s", names[i]);
        c->req[i].slot = -1;
    }
    /* No events: clocks and rusage only, nothing to probe (and PAPI is not
     * even initialised, which keeps callgrind runs and tools light). */
    if (n == 0) {
        c->backend = MET_BACKEND_PERF;
        snprintf(c->backend_note, sizeof c->backend_note, "no events: clocks and rusage only");
    } else
        rc = resolve_backend(c, opts, err);
    if (!rc)
        rc = c->backend == MET_BACKEND_PAPI ? met_counters_setup_papi(c, names, n, err)
                                            : met_counters_setup_perf(c, names, n, err);
    if (!rc && pthread_key_create(&c->key, thread_exit) != 0)
        rc = eng_err_set(err, ENG_ENOMEM, "counters: no thread-specific key left");
    if (rc) {
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return ENG_OK;
}

int met_counters_open_list(met_counters **out, const char *list,
                           const met_counters_opts *opts, eng_err *err)
{
    char buf[MET_COUNTERS_MAX * 130];
    const char *names[MET_COUNTERS_MAX];
    size_t n = 0;
    if (!list)
        list = "";
    if (strlen(list) >= sizeof buf)
        return eng_err_set(err, ENG_EINVAL, "event list too long (%zu characters)",
                           strlen(list));
    strcpy(buf, list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        if (n == MET_COUNTERS_MAX)
            return eng_err_set(err, ENG_EINVAL, "too many events in '%s' (at most %d)", list,
                               MET_COUNTERS_MAX);
        names[n++] = tok;
    }
    return met_counters_open(out, names, n, opts, err);
}

int met_counters_open_preset(met_counters **out, const char *preset,
                             const met_counters_opts *opts, eng_err *err)
{
    const char *const *names;
    size_t n;
    int rc = met_preset_events(preset, &names, &n, err);
    return rc ? rc : met_counters_open(out, names, n, opts, err);
}

void met_counters_free(met_counters *c)
{
    if (!c)
        return;
    met_counters_thread *mine = pthread_getspecific(c->key);
    pthread_key_delete(c->key);
    for (met_counters_thread *t = c->threads, *next; t; t = next) {
        next = t->next;
        /* Another live thread's PAPI set can only be stopped by that
         * thread; perf fds can be closed from anywhere. */
        if (t == mine || c->backend == MET_BACKEND_PERF)
            thread_detach(t, 0);
        free(t);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- queries ---------------------------------------------------------- */

met_backend met_counters_backend(const met_counters *c) { return c->backend; }
int met_counters_multiplexed(const met_counters *c) { return c->multiplex; }
const char *met_counters_backend_note(const met_counters *c) { return c->backend_note; }
size_t met_counters_requested(const met_counters *c) { return c->n_req; }
size_t met_counters_count(const met_counters *c) { return c ? c->n : 0; }
size_t met_counters_fields(const met_counters *c) { return MET_S_EVENT0 + met_counters_count(c); }

const char *met_backend_name(met_backend b)
{
    return b == MET_BACKEND_PAPI ? "papi" : b == MET_BACKEND_PERF ? "perf_event_open" : "auto";
}

const met_event_status *met_counters_status(const met_counters *c, size_t i)
{
    return i < c->n_req ? &c->req[i] : NULL;
}

const char *met_counters_event_name(const met_counters *c, size_t slot)
{
    return c && slot < c->n ? c->req[c->req_of[slot]].name : NULL;
}

const char *met_counters_field_name(const met_counters *c, size_t i)
{
    static const char *const fixed[MET_S_EVENT0] = {
        "wall_ns", "user_ns", "sys_ns", "minflt", "majflt", "nvcsw", "nivcsw",
    };
    return i < MET_S_EVENT0 ? fixed[i] : met_counters_event_name(c, i - MET_S_EVENT0);
}

int met_counters_thread_errors(const met_counters *c, char *msg, size_t cap)
{
    pthread_mutex_lock((pthread_mutex_t *)&c->mu);
    int n = c->thread_errors;
    if (msg && cap)
        snprintf(msg, cap, "%s", c->thread_err);
    pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
    return n;
}

int met_counters_threads(const met_counters *c)
{
    pthread_mutex_lock((pthread_mutex_t *)&c->mu);
    int n = c->nthreads;
    pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
    return n;
}

double met_counters_running_fraction(const met_counters *c, size_t slot)
{
    if (slot >= c->n)
        return -1;
    if (!c->multiplex)
        return 1.0;
    if (c->backend == MET_BACKEND_PAPI)
        return -1;
    uint64_t en = 0, run = 0;
    pthread_mutex_lock((pthread_mutex_t *)&c->mu);
    for (const met_counters_thread *t = c->threads; t; t = t->next) {
        en += __atomic_load_n(&t->enabled[slot], __ATOMIC_RELAXED);
        run += __atomic_load_n(&t->running[slot], __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
    return en ? (double)run / (double)en : 1.0;
}

/* ---- per-thread handles and reading ----------------------------------- */

static void note_thread_error(met_counters *c, const char *msg)
{
    if (c->thread_errors++ == 0)
        snprintf(c->thread_err, sizeof c->thread_err, "%s", msg);
}

met_counters_thread *met_counters_thread_get(met_counters *c)
{
    met_counters_thread *t = pthread_getspecific(c->key);
    if (t)
        return t;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->c = c;
    t->papi_set = -1; /* PAPI_NULL */
    for (size_t i = 0; i < MET_COUNTERS_MAX; i++)
        t->fd[i] = -1;
    char msg[256] = "";
    int rc = 0;
    if (c->n > 0)
        rc = c->backend == MET_BACKEND_PAPI ? met_counters_attach_papi(t, msg, sizeof msg)
                                            : met_counters_attach_perf(t, msg, sizeof msg);
    t->ok = c->n > 0 && rc == 0;
    pthread_mutex_lock(&c->mu);
    if (rc)
        note_thread_error(c, msg);
    t->next = c->threads;
    c->threads = t;
    c->nthreads++;
    pthread_mutex_unlock(&c->mu);
    pthread_setspecific(c->key, t);
    return t;
}

static int64_t tv_ns(struct timeval tv)
{
    return (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
}

void met_counters_read(met_counters_thread *t, met_sample *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s->v[MET_S_WALL_NS] = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0)
        memset(&ru, 0, sizeof ru);
    s->v[MET_S_USER_NS] = tv_ns(ru.ru_utime);
    s->v[MET_S_SYS_NS] = tv_ns(ru.ru_stime);
    s->v[MET_S_MINFLT] = ru.ru_minflt;
    s->v[MET_S_MAJFLT] = ru.ru_majflt;
    s->v[MET_S_NVCSW] = ru.ru_nvcsw;
    s->v[MET_S_NIVCSW] = ru.ru_nivcsw;
    met_counters *c = t->c;
    int64_t *ev = &s->v[MET_S_EVENT0];
    if (!t->ok || t->detached) {
        memset(ev, 0, c->n * sizeof *ev);
        return;
    }
    int rc = c->backend == MET_BACKEND_PAPI ? met_counters_read_papi(t, ev)
                                            : met_counters_read_perf(t, ev);
    if (rc) {
        /* A failed read repeats the last values (the interval counts 0) and
         * stops this thread's events: a set that failed once is not trusted. */
        memcpy(ev, t->last, c->n * sizeof *ev);
        t->ok = 0;
        pthread_mutex_lock(&c->mu);
        note_thread_error(c, "reading the thread's event set failed");
        pthread_mutex_unlock(&c->mu);
        return;
    }
    memcpy(t->last, ev, c->n * sizeof *ev);
}
