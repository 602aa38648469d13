/*
 * papi.h — PAPI library set-up and the event catalogue behind
 * `moebench events`.
 *
 * met_papi_init initialises PAPI's low-level API once per process (PAPI keeps
 * its own process-wide state; this wrapper only makes repeated calls cheap
 * and turns failures into messages). met_events_list enumerates PAPI presets
 * and the native events of every active component (libpfm4 names such as
 * perf::TASK-CLOCK or amd64_fam19h_zen4::RETIRED_INSTRUCTIONS) and probes
 * each one on its own: an event set with just that event is created,
 * started around a small workload and stopped. The probe is the truth: on a
 * VM without a PMU, PAPI lists hardware events that then fail to start.
 *
 * Thread-safety: call from one thread (PAPI_library_init is not reentrant).
 */
#ifndef MET_PAPI_H
#define MET_PAPI_H

#include "engine/err.h"

#include <stddef.h>

/* Initialises PAPI (idempotent), with thread support (PAPI_thread_init with
 * pthread_self) and multiplexing support. ENG_EUNSUPPORTED with PAPI's
 * reason when the library cannot start. */
int met_papi_init(eng_err *err);

typedef struct met_papi_component {
    char name[64];
    int enabled;           /* 0 when PAPI disabled it at initialisation */
    char reason[256];      /* PAPI's disabled_reason, "" when enabled   */
    int num_native;        /* native events it offers                   */
} met_papi_component;

/* Components PAPI was built with; *out is malloc'd. */
int met_papi_components(met_papi_component **out, size_t *n, eng_err *err);

enum { MET_EVENT_PRESET = 1, MET_EVENT_NATIVE = 2 };

typedef struct met_event_info {
    char name[128];        /* PAPI_TOT_INS, perf::TASK-CLOCK, ...            */
    char descr[256];       /* PAPI's short description                       */
    int kind;              /* MET_EVENT_PRESET or MET_EVENT_NATIVE           */
    char component[64];    /* component of a native event ("perf_event")     */
    int countable;         /* 1 when add + start + stop succeeded            */
    char reason[256];      /* why not ("start: Permission level..."), or ""  */
    long long probe_value; /* what the probe counted (0 when not countable)  */
} met_event_info;

/* Lists the events of the given kinds (MET_EVENT_PRESET | MET_EVENT_NATIVE),
 * each probed as described above. *out is malloc'd, caller frees. */
int met_events_list(int kinds, met_event_info **out, size_t *n, eng_err *err);

/* 1 when PAPI's perf_event component is active; 0 when it is disabled (no
 * PMU found) or absent — then metrics/counters.c counts through
 * perf_event_open and met_events_list lists that backend's perf:: events,
 * with component "perf_event_open". */
int met_papi_perf_component_active(void);

/* Probes one event by name; fills info (name, kind, countable, reason).
 * ENG_EINVAL when PAPI does not know the name. */
int met_event_probe(const char *name, met_event_info *info, eng_err *err);

#endif
