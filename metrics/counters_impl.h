/*
 * counters_impl.h — internals shared by counters.c (common part, threads,
 * presets) and its two backends, counters_papi.c and counters_perf.c.
 * Not part of the public contract.
 *
 * Invariants: req[0..n_req) holds every asked-for name in order; the kept
 * ones have status.slot = 0..n-1 in that same order and req_of[slot] points
 * back. A thread handle belongs to the thread that made it: only that thread
 * touches papi_set/fd/last; other threads only read enabled/running (relaxed
 * atomics) and the list links (under mu).
 */
#ifndef MET_COUNTERS_IMPL_H
#define MET_COUNTERS_IMPL_H

#include "metrics/counters.h"

#include <linux/perf_event.h>
#include <pthread.h>

struct met_counters {
    met_backend backend;                 /* resolved: PAPI or PERF            */
    int multiplex;
    size_t n_req;
    met_event_status req[MET_COUNTERS_MAX];
    size_t n;                            /* kept events                       */
    int req_of[MET_COUNTERS_MAX];        /* slot -> index into req            */
    int papi_code[MET_COUNTERS_MAX];     /* PAPI backend: event code per slot */
    int papi_cidx;                       /* PAPI backend: perf_event component */
    char backend_note[320];              /* why auto chose PERF, else ""       */
    struct perf_event_attr attr[MET_COUNTERS_MAX]; /* PERF backend, per slot  */
    pthread_key_t key;                   /* -> this thread's handle           */
    pthread_mutex_t mu;                  /* guards the fields below           */
    met_counters_thread *threads;        /* every handle made, newest first   */
    int nthreads;
    int thread_errors;
    char thread_err[256];
};

struct met_counters_thread {
    met_counters *c;
    met_counters_thread *next;
    int ok;                              /* events count on this thread       */
    int papi_set;                        /* PAPI backend; PAPI_NULL if none   */
    int fd[MET_COUNTERS_MAX];            /* PERF backend, per slot; -1 if none */
    int64_t last[MET_COUNTERS_MAX];      /* last good event values            */
    uint64_t enabled[MET_COUNTERS_MAX];  /* PERF: ns enabled at last read      */
    uint64_t running[MET_COUNTERS_MAX];  /* PERF: ns running at last read      */
    uint64_t raw[MET_COUNTERS_MAX];      /* PERF multiplexed: raw count at last read */
    int64_t scaled[MET_COUNTERS_MAX];    /* PERF multiplexed: sum of scaled deltas   */
    int detached;                        /* its set was stopped and freed     */
};

/* Backend set-up on the opening thread: resolves every name, probes it on
 * top of the kept ones, fills req/n/req_of and the per-slot encoding. */
int met_counters_setup_papi(met_counters *c, const char *const *names, size_t n,
                            eng_err *err);
int met_counters_setup_perf(met_counters *c, const char *const *names, size_t n,
                            eng_err *err);
/* Is PAPI usable with an active perf_event component (and, if asked, able
 * to multiplex)? Fills cidx, or why not. */
int met_counters_papi_usable(int multiplex, int *cidx, char *why, size_t cap);

/* Per-thread: make the calling thread's set (0 ok, else fills msg), read it
 * (cumulative values per slot; 0 ok), stop and free it. */
int met_counters_attach_papi(met_counters_thread *t, char *msg, size_t cap);
int met_counters_read_papi(met_counters_thread *t, int64_t *vals);
void met_counters_detach_papi(met_counters_thread *t, int thread_exiting);
int met_counters_attach_perf(met_counters_thread *t, char *msg, size_t cap);
int met_counters_read_perf(met_counters_thread *t, int64_t *vals);
void met_counters_detach_perf(met_counters_thread *t);

/* Records a kept event in the next slot. */
void met_counters_keep(met_counters *c, size_t req_index, const char *via);
/* Records a dropped event with a reason. */
void met_counters_drop(met_counters *c, size_t req_index, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
