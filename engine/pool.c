/*
 * pool.c — pthread pool (see pool.h).
 *
 * State machine: the caller publishes (fn, ctx, n_tasks), sets `pending` to
 * the number of workers and bumps `gen`. Each worker that sees a new `gen`
 * pulls task indices from `next` until they run out, then decrements
 * `pending`; the last one wakes the caller. Invariant: fields of a run are
 * written only while pending == 0 (no worker reads them then).
 */
#include "engine/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

enum { SPIN_ITERS = 20000 };

struct eng_pool {
    int n_threads;
    pthread_t *threads;           /* [n_threads - 1] workers */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    _Atomic uint64_t gen;         /* bumped once per run */
    _Atomic int next;             /* next task index to hand out */
    _Atomic int pending;          /* workers still inside the current run */
    _Atomic int stop;
    eng_pool_fn fn;
    void *ctx;
    int n_tasks;
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

static void run_tasks(eng_pool *p, int thread)
{
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks)
            break;
        p->fn(p->ctx, t, thread);
    }
}

static uint64_t wait_for_gen(eng_pool *p, uint64_t seen)
{
    for (int i = 0; i < SPIN_ITERS; i++) {
        uint64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen || atomic_load(&p->stop))
            return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    uint64_t g;
    while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->cv_work, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *argp)
{
    worker_arg *a = argp;
    eng_pool *p = a->pool;
    int id = a->id;
    free(a);
    uint64_t seen = 0;
    for (;;) {
        seen = wait_for_gen(p, seen);
        if (atomic_load(&p->stop))
            return NULL;
        run_tasks(p, id);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
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

void eng_pool_run(eng_pool *p, eng_pool_fn fn, void *ctx, int n_tasks)
{
    if (n_tasks <= 0)
        return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->pending) != 0)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
