/*
 * pool.c — pthread pool (see pool.h).
 *
 * A run is published as one 64-bit ticket (gen << 32 | next task). Threads
 * claim task indices by compare-and-swap on the ticket, so a claim can only
 * succeed for the run that is current; the caller returns when `done`
 * reaches n_tasks. The caller never waits for a worker that took no task:
 * on a busy machine a descheduled worker costs nothing but its share.
 *
 * Invariants: fn/ctx/n_tasks of run g are written before the ticket of g is
 * published and are not changed until run g has finished, i.e. until every
 * task of g was claimed and done; a successful claim therefore always reads
 * the fields of its own run.
 */
#include "engine/pool.h"

#include <pthread.h>
#include <sched.h>
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
    _Atomic int done;             /* tasks of the current run finished */
    _Atomic int sleepers;         /* workers blocked on cv_work */
    _Atomic int stop;
    eng_pool_fn fn;
    void *ctx;
    _Atomic int n_tasks;
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

/* Claims and runs tasks of run `gen` until none are left. */
static void run_tasks(eng_pool *p, uint32_t gen, int thread)
{
    uint64_t t = atomic_load(&p->ticket);
    for (;;) {
        if ((uint32_t)(t >> 32) != gen)
            return;
        uint32_t idx = (uint32_t)t;
        if (idx >= (uint32_t)atomic_load(&p->n_tasks))
            return;
        if (!atomic_compare_exchange_weak(&p->ticket, &t, t + 1))
            continue; /* t reloaded */
        p->fn(p->ctx, (int)idx, thread);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        t = atomic_load(&p->ticket);
    }
}

static uint32_t wait_for_gen(eng_pool *p, uint32_t seen)
{
    for (int i = 0; i < SPIN_ITERS; i++) {
        uint32_t g = (uint32_t)(atomic_load(&p->ticket) >> 32);
        if (g != seen || atomic_load(&p->stop))
            return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    uint32_t g;
    while ((g = (uint32_t)(atomic_load(&p->ticket) >> 32)) == seen && !atomic_load(&p->stop))
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
    free(p->threads);
    free(p);
}

int eng_pool_threads(const eng_pool *p)
{
    return p->n_threads;
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
    uint32_t gen = (uint32_t)(atomic_load(&p->ticket) >> 32) + 1;
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
    /* every task is claimed; wait for those still running elsewhere. On a
     * busy machine the worker may be waiting for our CPU: yield after a
     * short spin instead of burning the time slice it needs. */
    for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_tasks; i++) {
        if (i < SPIN_ITERS)
            cpu_relax();
        else
            sched_yield();
    }
}
