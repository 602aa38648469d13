/*
 * pool.h — the engine's own pthread pool for matrix work.
 *
 * eng_pool_run(pool, fn, ctx, n_tasks) calls fn(ctx, task, thread) once for
 * every task in [0, n_tasks) and returns when all have finished. The caller's
 * thread takes part as thread 0, so a pool of 1 thread starts no threads.
 * Tasks are handed out dynamically, in chunks of consecutive indices (guided:
 * large first, shrinking towards the end); `thread` (0..n_threads-1) only
 * selects per-thread scratch memory. Determinism is the caller's contract: a task's
 * result must depend on the task index only, never on which thread ran it or
 * how many threads there are. The forward pass keeps this by cutting work
 * into fixed-size tiles whose sums are done inside one task.
 *
 * Workers spin briefly after each run (decode runs many small parallel
 * sections per token) and then sleep on a condition variable; the caller,
 * once every task is claimed, spins briefly and then sleeps until the last
 * task finishes.
 *
 * Thread-safety: one caller thread at a time may call eng_pool_run; fn runs
 * on all pool threads concurrently.
 */
#ifndef ENG_POOL_H
#define ENG_POOL_H

#include "engine/err.h"

typedef struct eng_pool eng_pool;
typedef void (*eng_pool_fn)(void *ctx, int task, int thread);

/* n_threads >= 1 (0 means all online CPUs). */
int eng_pool_open(eng_pool **out, int n_threads, eng_err *err);
void eng_pool_free(eng_pool *pool);
int eng_pool_threads(const eng_pool *pool);
void eng_pool_run(eng_pool *pool, eng_pool_fn fn, void *ctx, int n_tasks);

/* Number of online CPUs (at least 1). */
int eng_cpu_count(void);

#endif
