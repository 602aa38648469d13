/*
 * regions.c — region accounting behind the hook table. See regions.h for
 * the contract (exclusive nesting, tokens, callgrind mode, thread-safety).
 *
 * State per thread (rthread): the region stack, the last reading and the
 * exclusive totals per region. The owning thread is the only writer of its
 * totals; it stores them with relaxed atomics so that token_done and the
 * queries, on other threads, read whole values without a lock (x86-64 and
 * every 64-bit target: an aligned 8-byte relaxed load/store is a plain
 * mov). The list of rthreads only grows (mutex mu); an rthread whose thread
 * has exited is reused by the next new thread, so its totals keep counting.
 *
 * Invariant: between two boundaries on a thread, `last` is the reading at
 * the previous boundary and the interval belongs to stack[depth-1] (or to
 * no region when depth == 0 — unless the next begin coalesces, see
 * coalesce(), and claims that short gap for its region).
 */
#include "metrics/regions.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif

enum { MAX_DEPTH = 32, NREG = ENG_REGION_COUNT };

typedef struct rthread {
    struct rthread *next;
    met_counters_thread *ct;
    int exited;                      /* its thread has gone; reusable      */
    int depth, overflow;             /* stack depth; begins past MAX_DEPTH */
    eng_region stack[MAX_DEPTH];
    met_sample last;
    int last_closed_top;             /* last boundary ended a top-level region */
    int64_t closed_at_ns;            /* clock when that end's reading finished */
    uint64_t readings;               /* full counter readings (relaxed atomic) */
    uint64_t calls[NREG];            /* relaxed atomics, owner writes     */
    int64_t acc[NREG][MET_SAMPLE_MAX];
} rthread;

/* One closed token: wall time and the growth of every total. */
typedef struct token_rec {
    int64_t wall_ns;
    uint64_t calls[NREG];
    int64_t v[NREG][MET_SAMPLE_MAX];
} token_rec;

struct met_regions {
    met_counters *c;
    met_counters *owned;             /* the empty set made when none given */
    size_t nf;                       /* meaningful sample fields           */
    int abort_on_misuse, callgrind;
    int no_coalesce;                 /* opts.coalesce == 0                  */
    pthread_key_t key;
    pthread_mutex_t mu;              /* guards threads, tokens, prev, err_msg */
    rthread *threads;
    int nthreads;
    int64_t token_mark;              /* atomic: start of the open token, 0 = none yet */
    token_rec prev;                  /* totals at the last token_done      */
    token_rec *tokens;
    size_t ntokens, captokens;
    uint64_t errors;                 /* atomic                             */
    char err_msg[256];
    uint64_t flops[NREG];            /* atomic, rounded FLOPs              */
    met_regions_loads loads;         /* atomic fields                      */
    char cg_label[NREG + 1][48];     /* "moebench:<region>", last "moebench:outside" */
};

/* ---- open / free ------------------------------------------------------ */

void met_regions_opts_default(met_regions_opts *o)
{
    o->abort_on_misuse = -1;
    o->callgrind = -1;
    o->coalesce = -1;
}

static int under_valgrind(void)
{
#ifdef HAVE_CALLGRIND
    return RUNNING_ON_VALGRIND != 0;
#else
    return 0;
#endif
}

static void thread_gone(void *p)
{
    __atomic_store_n(&((rthread *)p)->exited, 1, __ATOMIC_RELEASE);
}

int met_regions_open(met_regions **out, met_counters *counters, const met_regions_opts *opts,
                     eng_err *err)
{
    met_regions_opts o;
    met_regions_opts_default(&o);
    if (opts)
        o = *opts;
    *out = NULL;
    met_regions *r = calloc(1, sizeof *r);
    if (!r)
        return eng_err_set(err, ENG_ENOMEM, "out of memory opening regions");
    if (!counters) {
        met_counters_opts co = {.backend = MET_BACKEND_PERF};
        int rc = met_counters_open(&r->owned, NULL, 0, &co, err);
        if (rc) {
            free(r);
            return rc;
        }
        counters = r->owned;
    }
    r->c = counters;
    r->nf = met_counters_fields(counters);
#ifdef NDEBUG
    r->abort_on_misuse = o.abort_on_misuse == 1;
#else
    r->abort_on_misuse = o.abort_on_misuse != 0;
#endif
    r->callgrind = o.callgrind < 0 ? under_valgrind() : o.callgrind != 0;
    r->no_coalesce = o.coalesce == 0;
    for (int g = 0; g <= NREG; g++)
        snprintf(r->cg_label[g], sizeof r->cg_label[g], "moebench:%s",
                 g < NREG ? eng_region_name((eng_region)g) : "outside");
    if (pthread_key_create(&r->key, thread_gone) != 0) {
        met_counters_free(r->owned);
        free(r);
        return eng_err_set(err, ENG_ENOMEM, "regions: no thread-specific key left");
    }
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return ENG_OK;
}

void met_regions_free(met_regions *r)
{
    if (!r)
        return;
    pthread_key_delete(r->key);
    for (rthread *t = r->threads, *next; t; t = next) {
        next = t->next;
        free(t);
    }
    pthread_mutex_destroy(&r->mu);
    free(r->tokens);
    met_counters_free(r->owned);
    free(r);
}

void met_regions_reset(met_regions *r)
{
    pthread_mutex_lock(&r->mu);
    for (rthread *t = r->threads; t; t = t->next) {
        memset(t->calls, 0, sizeof t->calls);
        memset(t->acc, 0, sizeof t->acc);
        __atomic_store_n(&t->readings, 0, __ATOMIC_RELAXED);
    }
    memset(&r->prev, 0, sizeof r->prev);
    r->ntokens = 0;
    r->token_mark = 0;
    r->errors = 0;
    r->err_msg[0] = '\0';
    memset(r->flops, 0, sizeof r->flops);
    memset(&r->loads, 0, sizeof r->loads);
    pthread_mutex_unlock(&r->mu);
}

/* ---- the hot path ----------------------------------------------------- */

static rthread *thread_state(met_regions *r)
{
    rthread *t = pthread_getspecific(r->key);
    if (t)
        return t;
    pthread_mutex_lock(&r->mu);
    for (t = r->threads; t; t = t->next) /* reuse one whose thread has exited */
        if (__atomic_load_n(&t->exited, __ATOMIC_ACQUIRE))
            break;
    if (t) {
        t->exited = 0;
        t->depth = t->overflow = 0;
    } else if ((t = calloc(1, sizeof *t)) != NULL) {
        t->next = r->threads;
        r->threads = t;
        r->nthreads++;
    }
    pthread_mutex_unlock(&r->mu);
    if (!t)
        return NULL;
    t->ct = met_counters_thread_get(r->c);
    if (!t->ct) {
        __atomic_store_n(&t->exited, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    pthread_setspecific(r->key, t);
    return t;
}

static void misuse(met_regions *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void misuse(met_regions *r, const char *fmt, ...)
{
    if (__atomic_fetch_add(&r->errors, 1, __ATOMIC_RELAXED) == 0) {
        pthread_mutex_lock(&r->mu);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
        va_end(ap);
        pthread_mutex_unlock(&r->mu);
    }
    if (r->abort_on_misuse) {
        fprintf(stderr, "moebench: region nesting error (see met_regions_errors)\n");
        assert(!"region nesting error");
        abort(); /* also with NDEBUG when abort_on_misuse = 1 */
    }
}

/* Charges the interval since the last reading to region reg. */
static void charge(met_regions *r, rthread *t, eng_region reg, const met_sample *now)
{
    int64_t *acc = t->acc[reg];
    for (size_t k = 0; k < r->nf; k++)
        __atomic_store_n(&acc[k], acc[k] + (now->v[k] - t->last.v[k]), __ATOMIC_RELAXED);
}

static void cg_dump(const met_regions *r, const rthread *t)
{
#ifdef HAVE_CALLGRIND
    if (r->callgrind)
        CALLGRIND_DUMP_STATS_AT(r->cg_label[t->depth ? t->stack[t->depth - 1] : NREG]);
#else
    (void)r;
    (void)t;
#endif
}

/* Back-to-back regions share a boundary. When a top-level region begins
 * within COALESCE_NS of the end of the previous one on this thread, the end
 * reading is reused as the new region's start and the gap (no region's
 * time, typically a few instructions of the engine between two regions) is
 * charged to the new region instead of to nothing. That saves one full
 * reading — getrusage plus a read(2) of the event group, several
 * microseconds each on a cold kernel path — at most boundaries of a decode
 * step, which halves the counters' overhead on the engine
 * (docs/counters.md, "Overhead"). Only the cheap vDSO clock is read to
 * decide. Never under callgrind: there every boundary must dump so that
 * the instruction counts stay exact per region. */
enum { COALESCE_NS = 5000 };

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int coalesce(const met_regions *r, const rthread *t)
{
    if (!t->last_closed_top || t->depth || r->callgrind || r->no_coalesce)
        return 0;
    return now_ns() - t->closed_at_ns < COALESCE_NS;
}

void met_regions_begin(met_regions *r, eng_region reg)
{
    rthread *t = thread_state(r);
    if (!t)
        return;
    if ((unsigned)reg >= NREG) {
        misuse(r, "begin of unknown region id %d", (int)reg);
        return;
    }
    if (t->depth == MAX_DEPTH) {
        t->overflow++;
        misuse(r, "begin of '%s': regions nested deeper than %d", eng_region_name(reg),
               MAX_DEPTH);
        return;
    }
    /* With coalescing the gap since the last end joins this region: its
     * start is that end's reading, already in t->last. */
    if (!coalesce(r, t)) {
        met_sample now;
        met_counters_read(t->ct, &now);
        __atomic_store_n(&t->readings, t->readings + 1, __ATOMIC_RELAXED);
        cg_dump(r, t);
        if (t->depth)
            charge(r, t, t->stack[t->depth - 1], &now);
        t->last = now;
    }
    if (!t->depth && !__atomic_load_n(&r->token_mark, __ATOMIC_RELAXED)) {
        int64_t zero = 0;
        __atomic_compare_exchange_n(&r->token_mark, &zero, t->last.v[MET_S_WALL_NS], 0,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    t->last_closed_top = 0;
    t->stack[t->depth++] = reg;
    __atomic_store_n(&t->calls[reg], t->calls[reg] + 1, __ATOMIC_RELAXED);
}

/* Position of reg in the stack, innermost first; -1 if not open. */
static int find_open(const rthread *t, eng_region reg)
{
    for (int i = t->depth - 1; i >= 0; i--)
        if (t->stack[i] == reg)
            return i;
    return -1;
}

void met_regions_end(met_regions *r, eng_region reg)
{
    rthread *t = thread_state(r);
    if (!t)
        return;
    if (t->overflow) { /* the matching begin was past MAX_DEPTH */
        t->overflow--;
        return;
    }
    if ((unsigned)reg >= NREG) {
        misuse(r, "end of unknown region id %d", (int)reg);
        return;
    }
    int at = find_open(t, reg);
    if (at < 0) {
        misuse(r, "end of '%s' without a begin", eng_region_name(reg));
        return;
    }
    if (at != t->depth - 1)
        misuse(r, "end of '%s' while '%s' is open inside it", eng_region_name(reg),
               eng_region_name(t->stack[t->depth - 1]));
    met_sample now;
    met_counters_read(t->ct, &now);
    __atomic_store_n(&t->readings, t->readings + 1, __ATOMIC_RELAXED);
    cg_dump(r, t);
    charge(r, t, t->stack[t->depth - 1], &now);
    t->depth = at; /* closes reg and anything left open inside it */
    t->last = now;
    t->last_closed_top = at == 0;
    if (t->last_closed_top) /* the gap is measured from here: the reading itself takes µs */
        t->closed_at_ns = now_ns();
}

/* ---- tokens, flops, loads --------------------------------------------- */

/* Sum over threads of every total, into *s. Caller holds mu. */
static void snapshot(const met_regions *r, token_rec *s)
{
    memset(s, 0, sizeof *s);
    for (const rthread *t = r->threads; t; t = t->next)
        for (int g = 0; g < NREG; g++) {
            s->calls[g] += __atomic_load_n(&t->calls[g], __ATOMIC_RELAXED);
            for (size_t k = 0; k < r->nf; k++)
                s->v[g][k] += __atomic_load_n(&t->acc[g][k], __ATOMIC_RELAXED);
        }
}

void met_regions_token_done(met_regions *r, int64_t pos)
{
    (void)pos;
    int64_t now = now_ns();
    pthread_mutex_lock(&r->mu);
    if (r->ntokens == r->captokens) {
        size_t cap = r->captokens ? 2 * r->captokens : 64;
        token_rec *nt = realloc(r->tokens, cap * sizeof *nt);
        if (!nt) {
            pthread_mutex_unlock(&r->mu);
            return; /* the token is not recorded; totals stay right */
        }
        r->tokens = nt;
        r->captokens = cap;
    }
    token_rec *rec = &r->tokens[r->ntokens++];
    snapshot(r, rec);
    token_rec cur = *rec;
    for (int g = 0; g < NREG; g++) {
        rec->calls[g] -= r->prev.calls[g];
        for (size_t k = 0; k < r->nf; k++)
            rec->v[g][k] -= r->prev.v[g][k];
    }
    r->prev = cur;
    int64_t mark = __atomic_load_n(&r->token_mark, __ATOMIC_RELAXED);
    rec->wall_ns = mark ? now - mark : 0;
    __atomic_store_n(&r->token_mark, now, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&r->mu);
}

void met_regions_add_flops(met_regions *r, eng_region reg, double flops)
{
    if ((unsigned)reg < NREG && flops > 0)
        __atomic_fetch_add(&r->flops[reg], (uint64_t)(flops + 0.5), __ATOMIC_RELAXED);
}

void met_regions_cache_event(met_regions *r, const eng_cache_event *ev)
{
    met_regions_loads *l = &r->loads;
    switch (ev->kind) {
    case ENG_CACHE_HIT: __atomic_fetch_add(&l->hits, 1, __ATOMIC_RELAXED); break;
    case ENG_CACHE_MISS: __atomic_fetch_add(&l->misses, 1, __ATOMIC_RELAXED); break;
    case ENG_CACHE_EVICT: __atomic_fetch_add(&l->evictions, 1, __ATOMIC_RELAXED); break;
    case ENG_CACHE_PREFETCH: __atomic_fetch_add(&l->prefetches, 1, __ATOMIC_RELAXED); break;
    case ENG_CACHE_LOAD_DONE:
        __atomic_fetch_add(&l->loads, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&l->bytes, ev->bytes, __ATOMIC_RELAXED);
        __atomic_fetch_add(&l->ns, ev->ns, __ATOMIC_RELAXED);
        break;
    }
}

/* ---- hooks ------------------------------------------------------------ */

static void hook_begin(void *u, eng_region reg) { met_regions_begin(u, reg); }
static void hook_end(void *u, eng_region reg) { met_regions_end(u, reg); }
static void hook_token(void *u, int64_t pos) { met_regions_token_done(u, pos); }
static void hook_cache(void *u, const eng_cache_event *ev) { met_regions_cache_event(u, ev); }

void met_regions_hooks(met_regions *r, eng_hooks *h)
{
    h->user = r;
    h->region_begin = hook_begin;
    h->region_end = hook_end;
    h->token_done = hook_token;
    h->cache = hook_cache;
}

/* ---- queries ---------------------------------------------------------- */

int met_regions_total(const met_regions *r, eng_region reg, met_region_stats *out)
{
    memset(out, 0, sizeof *out);
    if ((unsigned)reg >= NREG)
        return ENG_EINVAL;
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    for (const rthread *t = r->threads; t; t = t->next) {
        out->calls += __atomic_load_n(&t->calls[reg], __ATOMIC_RELAXED);
        for (size_t k = 0; k < r->nf; k++)
            out->v[k] += __atomic_load_n(&t->acc[reg][k], __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
    out->flops = (double)__atomic_load_n(&r->flops[reg], __ATOMIC_RELAXED);
    return ENG_OK;
}

size_t met_regions_tokens(const met_regions *r)
{
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    size_t n = r->ntokens;
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
    return n;
}

int64_t met_regions_token_wall_ns(const met_regions *r, size_t token)
{
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    int64_t w = token < r->ntokens ? r->tokens[token].wall_ns : -1;
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
    return w;
}

int64_t met_regions_token_time_ns(const met_regions *r)
{
    int64_t sum = 0;
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    for (size_t i = 0; i < r->ntokens; i++)
        sum += r->tokens[i].wall_ns;
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
    return sum;
}

int met_regions_token_stats(const met_regions *r, size_t token, eng_region reg,
                            met_region_stats *out)
{
    memset(out, 0, sizeof *out);
    int rc = ENG_EINVAL;
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    if (token < r->ntokens && (unsigned)reg < NREG) {
        out->calls = r->tokens[token].calls[reg];
        memcpy(out->v, r->tokens[token].v[reg], r->nf * sizeof out->v[0]);
        rc = ENG_OK;
    }
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
    return rc;
}

uint64_t met_regions_errors(const met_regions *r, char *msg, size_t cap)
{
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    uint64_t n = __atomic_load_n(&r->errors, __ATOMIC_RELAXED);
    if (msg && cap)
        snprintf(msg, cap, "%s", r->err_msg);
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
    return n;
}

int met_regions_threads(const met_regions *r)
{
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    int n = r->nthreads;
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
    return n;
}

uint64_t met_regions_readings(const met_regions *r)
{
    uint64_t n = 0;
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    for (const rthread *t = r->threads; t; t = t->next)
        n += __atomic_load_n(&t->readings, __ATOMIC_RELAXED);
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
    return n;
}

int met_regions_callgrind(const met_regions *r) { return r->callgrind; }
const met_counters *met_regions_counters(const met_regions *r) { return r->c; }

void met_regions_load_stats(const met_regions *r, met_regions_loads *out)
{
    const met_regions_loads *l = &r->loads;
    out->loads = __atomic_load_n(&l->loads, __ATOMIC_RELAXED);
    out->bytes = __atomic_load_n(&l->bytes, __ATOMIC_RELAXED);
    out->ns = __atomic_load_n(&l->ns, __ATOMIC_RELAXED);
    out->hits = __atomic_load_n(&l->hits, __ATOMIC_RELAXED);
    out->misses = __atomic_load_n(&l->misses, __ATOMIC_RELAXED);
    out->prefetches = __atomic_load_n(&l->prefetches, __ATOMIC_RELAXED);
    out->evictions = __atomic_load_n(&l->evictions, __ATOMIC_RELAXED);
}
