/*
 * pool.c — pthread pool (see pool.h).
 *
 * A run is published as one 64-bit ticket (gen << 32 | next task). Threads
 * claim a chunk of consecutive task indices by compare-and-swap on the
 * ticket, so a claim can only succeed for the run that is current; the
 * caller returns when `done` reaches n_tasks. The caller never waits for a
 * worker that took no task: on a busy machine a descheduled worker costs
 * nothing but its share.
 *
 * Chunks are guided (OpenMP's schedule(guided)): a claim takes the tasks
 * left / (2 * n_threads), at least one. Claiming one task at a time made
 * 2-thread decode slower than 1 thread (docs/performance.md, "2-thread
 * decode"): the two cores read alternate 16-row pieces of every matrix
 * (~34 KB of q8_0), which costs more than the claims themselves do (a
 * dummy compare-and-swap per task on the ticket's cache line did not slow
 * 4-task chunks down). Guided chunks give each thread long contiguous row
 * ranges with O(n_threads * log n_tasks) claims per run, and the halving
 * chunks still balance the tail. A thread adds its finished tasks to
 * `done` once per run, not once per task.
 *
 * Runs have even generations. Before it changes fn/ctx/n_tasks for run g,
 * the caller closes the finished run g - 2 by storing the ticket
 * (g - 1) << 32 | UINT32_MAX, on which no claim can succeed; workers wait
 * for an even generation they have not seen.
 *
 * Invariants: fn/ctx/n_tasks of run g are written after the ticket left run
 * g - 2 and before the ticket of g is published, and are not changed until
 * run g has finished, i.e. until every task of g was claimed and done. A
 * claim compares the whole ticket, so it succeeds only if the ticket still
 * holds run g, and then n_tasks, fn and ctx read around it are run g's.
 * (Without the closing store, a worker holding the exhausted ticket of g - 2
 * could read the n_tasks of g and claim a task "of g - 2" that does not
 * exist.)
 */
#include "engine/pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

enum { SPIN_ITERS = 4000 };

struct eng_pool {
    int n_threads;
    pthread_t *threads;           /* [n_threads - 1] workers */
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    _Atomic uint64_t ticket;      /* gen << 32 | next task index */
    pthread_cond_t cv_done;       /* the caller waits here for a slow worker */
    _Atomic int sleepers;         /* workers blocked on cv_work */
    _Atomic int caller_waiting;   /* the caller is (about to be) on cv_done */
    _Atomic int stop;
    eng_pool_fn fn;
    void *ctx;
    _Atomic int n_tasks;
    /* padded onto a cache line of its own (calloc'd, so no _Alignas): the
     * caller polls it while workers claim on the ticket's line */
    char pad0[64];
    _Atomic int done;             /* tasks of the current run finished */
    char pad1[64];
};

typedef struct worker_arg {
    eng_pool *pool;
    int id;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Tasks one claim takes when `left` remain: guided, at least 1. */
static uint32_t chunk_of(uint32_t left, int n_threads)
{
    uint32_t c = left / (2u * (uint32_t)n_threads);
    return c ? c : 1;
}

/* Claims and runs chunks of run `gen` until none are left. */
static void run_tasks(eng_pool *p, uint32_t gen, int thread)
{
    uint64_t t = atomic_load(&p->ticket);
    int mine = 0; /* tasks this thread finished */
    for (;;) {
        if ((uint32_t)(t >> 32) != gen)
            break;
        uint32_t idx = (uint32_t)t, n = (uint32_t)atomic_load(&p->n_tasks);
        if (idx >= n)
            break;
        uint32_t c = chunk_of(n - idx, p->n_threads);
        if (!atomic_compare_exchange_weak(&p->ticket, &t, t + c))
            continue; /* t reloaded */
        for (uint32_t i = idx; i < idx + c; i++)
            p->fn(p->ctx, (int)i, thread);
        mine += (int)c;
        t = atomic_load(&p->ticket);
    }
    if (!mine)
        return;
    atomic_fetch_add(&p->done, mine);
    if (atomic_load(&p->caller_waiting)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->cv_done);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Whether a worker that last ran generation `seen` has a new run in g. */
static bool is_new_run(uint32_t g, uint32_t seen)
{
    return g != seen && !(g & 1);
}

static uint32_t wait_for_gen(eng_pool *p, uint32_t seen)
{
    for (int i = 0; i < SPIN_ITERS; i++) {
        uint32_t g = (uint32_t)(atomic_load(&p->ticket) >> 32);
        if (is_new_run(g, seen) || atomic_load(&p->stop))
            return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    uint32_t g;
    while (!is_new_run(g = (uint32_t)(atomic_load(&p->ticket) >> 32), seen) &&
           !atomic_load(&p->stop))
        pthread_cond_wait(&p->cv_work, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *argp)
{
    worker_arg *a = argp;
    eng_pool *p = a->pool;
    int id = a->id;
    free(a);
    uint32_t seen = 0;
    for (;;) {
        seen = wait_for_gen(p, seen);
        if (atomic_load(&p->stop))
            return NULL;
        run_tasks(p, seen, id);
    }
}

int eng_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int eng_pool_open(eng_pool **out, int n_threads, eng_err *err)
{
    *out = NULL;
    if (n_threads < 0 || n_threads > 1024)
        return eng_err_set(err, ENG_EINVAL, "threads: %d out of range 0..1024", n_threads);
    if (n_threads == 0)
        n_threads = eng_cpu_count();
    eng_pool *p = calloc(1, sizeof *p);
    if (!p)
        return eng_err_set(err, ENG_ENOMEM, "thread pool: out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        p->n_threads = 1;
        eng_pool_free(p);
        return eng_err_set(err, ENG_ENOMEM, "thread pool: out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (a)
            *a = (worker_arg){.pool = p, .id = i};
        if (!a || pthread_create(&p->threads[i - 1], NULL, worker_main, a) != 0) {
            free(a);
            p->n_threads = i; /* only the started ones are joined */
            eng_pool_free(p);
            return eng_err_set(err, ENG_EIO, "thread pool: cannot start thread %d", i);
        }
    }
    *out = p;
    return ENG_OK;
}

void eng_pool_free(eng_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p->threads);
    free(p);
}

int eng_pool_threads(const eng_pool *p)
{
    return p->n_threads;
}

/* Every task is claimed; waits for those still running elsewhere: a short
 * spin, then a sleep that the last worker ends. Sleeping rather than
 * yielding leaves this CPU idle, so when another process has taken the
 * worker's CPU, the scheduler can move the descheduled worker here. */
static void wait_done(eng_pool *p, int n_tasks)
{
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load(&p->done) >= n_tasks)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_waiting, 1);
    while (atomic_load(&p->done) < n_tasks)
        pthread_cond_wait(&p->cv_done, &p->mu);
    atomic_store(&p->caller_waiting, 0);
    pthread_mutex_unlock(&p->mu);
}

void eng_pool_run(eng_pool *p, eng_pool_fn fn, void *ctx, int n_tasks)
{
    if (n_tasks <= 0)
        return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    uint32_t gen = (uint32_t)(atomic_load(&p->ticket) >> 32) + 2;
    atomic_store(&p->ticket, (uint64_t)(gen - 1) << 32 | UINT32_MAX); /* closes gen - 2 */
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->n_tasks, n_tasks);
    atomic_store(&p->done, 0);
    atomic_store(&p->ticket, (uint64_t)gen << 32); /* publishes the run */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
    }
    run_tasks(p, gen, 0);
    wait_done(p, n_tasks);
}
