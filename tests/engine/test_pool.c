/* test_pool.c — the thread pool under back-to-back runs: every task of
 * every run runs once, with that run's fn and ctx, and eng_pool_run returns
 * only after all of them finished (pool.c's guided chunks and the closing
 * of a finished run). test_sample.c has the basic once-per-task check. */
#include "engine/pool.h"
#include "tests/test.h"

#include <stdatomic.h>
#include <string.h>

enum { MAX_TASKS = 64, N_RUNS = 20000 };

typedef struct run_ctx {
    _Atomic int hits[MAX_TASKS];
    _Atomic int bad;      /* a task index >= n_tasks, or a bad thread id */
    int n_tasks;
    int n_threads;
} run_ctx;

static void hit(void *ctx, int task, int thread)
{
    run_ctx *c = ctx;
    if (task < 0 || task >= c->n_tasks || thread < 0 || thread >= c->n_threads) {
        c->bad++;
        return;
    }
    c->hits[task]++;
}

/* The same counting under a second fn: a task run with the previous run's
 * fn would count in the wrong array. */
static void hit_odd(void *ctx, int task, int thread)
{
    hit(ctx, task, thread);
}

/* Tiny runs (1..MAX_TASKS tasks, the shapes of decode's router and
 * attention) one after another, alternating fn and ctx, so workers often
 * arrive at a run that has just finished or is being set up. */
TEST(pool_back_to_back_runs)
{
    for (int nt = 2; nt <= 3; nt++) {
        eng_pool *p = NULL;
        eng_err e = {0};
        REQUIRE(eng_pool_open(&p, nt, &e) == 0);
        run_ctx *c = tst_alloc(2 * sizeof *c);
        int wrong = 0;
        for (int r = 0; r < N_RUNS && !wrong; r++) {
            run_ctx *x = &c[r & 1];
            memset(x, 0, sizeof *x);
            x->n_tasks = 1 + (r * 7) % MAX_TASKS;
            x->n_threads = nt;
            eng_pool_run(p, (r & 1) ? hit_odd : hit, x, x->n_tasks);
            for (int i = 0; i < MAX_TASKS; i++)
                wrong |= atomic_load(&x->hits[i]) != (i < x->n_tasks);
            wrong |= atomic_load(&x->bad) != 0;
            /* the other ctx must not have been touched since its run */
            run_ctx *o = &c[(r & 1) ^ 1];
            for (int i = 0; r > 0 && i < MAX_TASKS; i++)
                wrong |= atomic_load(&o->hits[i]) != (i < o->n_tasks);
            CHECK_MSG(!wrong, "%d threads: run %d (%d tasks) ran a task twice, not at all, "
                      "or after returning", nt, r, x->n_tasks);
        }
        eng_pool_free(p);
    }
}

typedef struct sum_ctx {
    _Atomic long long sum;
    _Atomic int count;
} sum_ctx;

static void add_task(void *ctx, int task, int thread)
{
    (void)thread;
    sum_ctx *c = ctx;
    c->sum += task;
    c->count++;
}

/* Large runs: the guided chunks cover [0, n) exactly (sum of indices). */
TEST(pool_chunks_cover_large_runs)
{
    const int sizes[] = {1, 2, 3, 5, 17, 1000, 3144, 100003};
    for (int nt = 1; nt <= 4; nt++) {
        eng_pool *p = NULL;
        eng_err e = {0};
        REQUIRE(eng_pool_open(&p, nt, &e) == 0);
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            sum_ctx c = {0};
            const long long n = sizes[i];
            eng_pool_run(p, add_task, &c, (int)n);
            CHECK_EQ_INT(atomic_load(&c.count), (int)n);
            CHECK_MSG(atomic_load(&c.sum) == n * (n - 1) / 2, "%d threads, %lld tasks", nt, n);
        }
        eng_pool_free(p);
    }
}
