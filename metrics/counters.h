/*
 * counters.h — per-thread hardware/software event counters plus wall time
 * and getrusage, behind one reading call (docs/counters.md).
 *
 * An event set is built from names: PAPI presets (PAPI_TOT_INS), libpfm4
 * native names (amd64_fam19h_zen4::RETIRED_INSTRUCTIONS, perf::INSTRUCTIONS)
 * and perf software events (perf::TASK-CLOCK, perf::PAGE-FAULTS). Each name
 * is tried on its own, in order, on top of the ones already kept (add +
 * start, the pattern Google Benchmark's PerfCounters use): one that cannot
 * be counted here is dropped with the reason (PAPI's, or errno's for the
 * perf_event_open backend) and the rest go on. A name nobody knows is
 * ENG_EINVAL naming it. Wall time (CLOCK_MONOTONIC) and getrusage
 * (RUSAGE_THREAD) are always read, so an empty event list is valid.
 *
 * Backends: PAPI's low-level API through its perf_event component; where
 * that component is disabled (no PMU and no perf_event support detected) or
 * PAPI cannot start, perf_event_open(2) directly, with libpfm4 encoding the
 * names (MET_BACKEND_PERF forces it). Multiplexing (opts.multiplex) lets
 * more events than counters share them: values are then estimates scaled
 * by enabled/running time (the perf backend reports the running fraction;
 * PAPI only reports its scaled estimate).
 *
 * Threads: each thread that reads gets its own event set lazily
 * (met_counters_thread_get: PAPI_register_thread + its own set, or its own
 * perf fds with pid 0), because a PAPI/perf event set counts the thread that
 * started it. Thread-safety: met_counters_open/free on one thread while no
 * other thread uses the object; met_counters_thread_get and
 * met_counters_read from any thread (a handle is used only by the thread it
 * was made for); the status/info queries from any thread.
 */
#ifndef MET_COUNTERS_H
#define MET_COUNTERS_H

#include "engine/err.h"

#include <stddef.h>
#include <stdint.h>

#define MET_COUNTERS_MAX 16  /* events per set (asked for, kept or not) */

typedef enum met_backend {
    MET_BACKEND_AUTO = 0,    /* PAPI when its perf_event component is active, else PERF */
    MET_BACKEND_PAPI,        /* PAPI only; ENG_EUNSUPPORTED if it cannot start          */
    MET_BACKEND_PERF         /* perf_event_open(2) + libpfm4 names, no PAPI             */
} met_backend;

typedef struct met_counters_opts {
    met_backend backend;
    int multiplex;           /* 1: time-share counters (values become scaled estimates) */
} met_counters_opts;

/* Fields of a sample, in order: clocks and rusage first, then events. */
enum {
    MET_S_WALL_NS = 0,       /* CLOCK_MONOTONIC, ns                       */
    MET_S_USER_NS,           /* getrusage(RUSAGE_THREAD) user time, ns    */
    MET_S_SYS_NS,            /* ... system time, ns                       */
    MET_S_MINFLT,            /* minor page faults                         */
    MET_S_MAJFLT,            /* major page faults                         */
    MET_S_NVCSW,             /* voluntary context switches                */
    MET_S_NIVCSW,            /* involuntary context switches              */
    MET_S_EVENT0,            /* first kept event; then the others in order */
    MET_SAMPLE_MAX = MET_S_EVENT0 + MET_COUNTERS_MAX
};

/* One reading of the calling thread: every field cumulative (since the
 * thread's set started, or since boot for the clock), so the difference of
 * two readings is what happened between them. Multiplexed event values are
 * scaled estimates and a difference can be slightly negative. */
typedef struct met_sample {
    int64_t v[MET_SAMPLE_MAX];
} met_sample;

/* What became of one asked-for event. */
typedef struct met_event_status {
    char name[128];          /* as asked                                   */
    int active;              /* 1 counted; 0 dropped                       */
    int slot;                /* index among the kept events (-1 dropped)   */
    char via[128];           /* what is counted when it differs from name
                                (a preset mapped to perf::X by the perf
                                backend), else ""                          */
    char reason[256];        /* why dropped ("add: Event does not exist")  */
} met_event_status;

typedef struct met_counters met_counters;
typedef struct met_counters_thread met_counters_thread;

/* Builds the set from names[0..n) (n <= MET_COUNTERS_MAX; n = 0 is valid).
 * opts may be NULL (auto backend, no multiplexing). ENG_EINVAL for an
 * unknown name, a duplicate, or too many; ENG_EUNSUPPORTED when the forced
 * backend cannot start. A name that is known but cannot be counted here is
 * not an error: it is dropped and its status says why. */
int met_counters_open(met_counters **out, const char *const *names, size_t n,
                      const met_counters_opts *opts, eng_err *err);
/* The same from a comma-separated list ("PAPI_TOT_INS,perf::TASK-CLOCK";
 * "" = none), or from a preset name (met_preset_events). */
int met_counters_open_list(met_counters **out, const char *list,
                           const met_counters_opts *opts, eng_err *err);
int met_counters_open_preset(met_counters **out, const char *preset,
                             const met_counters_opts *opts, eng_err *err);
/* Stops and frees every thread's set. Call after the threads that used it
 * have exited or will not read again. NULL is a no-op. */
void met_counters_free(met_counters *c);

met_backend met_counters_backend(const met_counters *c);  /* resolved: PAPI or PERF */
const char *met_backend_name(met_backend b);               /* "papi", "perf_event_open", "auto" */
int met_counters_multiplexed(const met_counters *c);
/* Why the auto backend chose perf_event_open ("PAPI perf_event component
 * disabled: ...; using perf_event_open"), "" otherwise. */
const char *met_counters_backend_note(const met_counters *c);

/* Events asked for (kept or dropped), and their status. */
size_t met_counters_requested(const met_counters *c);
const met_event_status *met_counters_status(const met_counters *c, size_t i);
/* Kept events: count, and the name of kept event `slot` (NULL if out of
 * range). Event `slot` is sample field MET_S_EVENT0 + slot. */
size_t met_counters_count(const met_counters *c);
const char *met_counters_event_name(const met_counters *c, size_t slot);
/* Name of sample field i ("wall_ns", "user_ns", ..., or the event's name);
 * NULL past the last field. */
const char *met_counters_field_name(const met_counters *c, size_t i);
/* Number of meaningful sample fields: MET_S_EVENT0 + met_counters_count. */
size_t met_counters_fields(const met_counters *c);

/* The calling thread's handle, made on its first call (own event set).
 * Never NULL unless out of memory: where the thread's set cannot be made
 * (PAPI refuses, fds run out), the handle still reads clocks and rusage,
 * its events read 0 and met_counters_thread_errors counts it. */
met_counters_thread *met_counters_thread_get(met_counters *c);
/* Reads clocks, rusage and events of the calling thread (t must be its own
 * handle). Cheap enough for region boundaries: one clock_gettime, one
 * getrusage and one read per event group. */
void met_counters_read(met_counters_thread *t, met_sample *s);

/* Threads whose event set could not be made or read, and the first reason
 * ("" when none). */
int met_counters_thread_errors(const met_counters *c, char *msg, size_t cap);
/* Threads that have read so far. */
int met_counters_threads(const met_counters *c);
/* Multiplexing scale of kept event `slot`: the fraction of its enabled time
 * the event was actually counting, summed over threads at their last read;
 * 1.0 without multiplexing, -1 when the backend cannot tell (PAPI). */
double met_counters_running_fraction(const met_counters *c, size_t slot);

/* Presets: named event lists (docs/counters.md).
 *   default  : PAPI_TOT_INS PAPI_TOT_CYC + four perf software events
 *   cache    : instructions, cycles, L1D/L2/L3 misses, data TLB misses
 *   branch   : instructions, cycles, branches, mispredictions, conditional branches
 *   software : perf::TASK-CLOCK PAGE-FAULTS MINOR-FAULTS MAJOR-FAULTS
 *              CONTEXT-SWITCHES CPU-MIGRATIONS
 * met_preset_events: ENG_EINVAL naming an unknown preset. met_preset_name(i)
 * enumerates them (NULL past the last). */
int met_preset_events(const char *preset, const char *const **names, size_t *n,
                      eng_err *err);
const char *met_preset_name(size_t i);

#endif
