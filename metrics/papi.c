/*
 * papi.c — PAPI initialisation and the probed event catalogue. See papi.h.
 *
 * Probing: PAPI's own availability flags say what the component *thinks* it
 * can count (libpfm4 detects the CPU model from CPUID, even inside a VM whose
 * hypervisor exposes no counters). Only starting an event set tells whether
 * the kernel will count it, so every event is started once on its own.
 */
#include "metrics/papi.h"

#include "metrics/counters.h"

#include <papi.h>
#include <perfmon/pfmlib_perf_event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int met_papi_init(eng_err *err)
{
    if (PAPI_is_initialized() != PAPI_NOT_INITED)
        return ENG_OK;
    int rc = PAPI_library_init(PAPI_VER_CURRENT);
    if (rc != PAPI_VER_CURRENT)
        return eng_err_set(err, ENG_EUNSUPPORTED, "PAPI_library_init: %s",
                           rc > 0 ? "version mismatch" : PAPI_strerror(rc));
    /* Thread support right after initialisation, before any event set
     * exists: metrics/counters.c gives every thread its own set, which PAPI
     * tells apart by pthread_self. Multiplex support costs nothing until an
     * event set asks for it. */
    rc = PAPI_thread_init(pthread_self);
    if (rc != PAPI_OK)
        return eng_err_set(err, ENG_EUNSUPPORTED, "PAPI_thread_init: %s", PAPI_strerror(rc));
    rc = PAPI_multiplex_init();
    if (rc != PAPI_OK)
        return eng_err_set(err, ENG_EUNSUPPORTED, "PAPI_multiplex_init: %s", PAPI_strerror(rc));
    return ENG_OK;
}

int met_papi_components(met_papi_component **out, size_t *n, eng_err *err)
{
    int rc = met_papi_init(err);
    if (rc)
        return rc;
    int nc = PAPI_num_components();
    met_papi_component *c = calloc(nc > 0 ? (size_t)nc : 1, sizeof *c);
    if (!c)
        return eng_err_set(err, ENG_ENOMEM, "out of memory listing PAPI components");
    for (int i = 0; i < nc; i++) {
        const PAPI_component_info_t *info = PAPI_get_component_info(i);
        if (!info)
            continue;
        snprintf(c[i].name, sizeof c[i].name, "%.63s", info->name);
        c[i].enabled = info->disabled == 0;
        snprintf(c[i].reason, sizeof c[i].reason, "%.255s",
                 info->disabled ? info->disabled_reason : "");
        c[i].num_native = info->num_native_events;
    }
    *out = c;
    *n = (size_t)nc;
    return ENG_OK;
}

/* A few microseconds of work with a page fault in it, so that software
 * events (task clock, page faults) have something to count. */
static long long probe_workload(void)
{
    volatile long long acc = 0;
    char *page = malloc(1 << 16);
    for (int i = 0; page && i < (1 << 16); i += 4096)
        page[i] = (char)i;
    for (int i = 0; i < 20000; i++)
        acc += i * (long long)i;
    free(page);
    return acc;
}

/* Adds, starts and stops `code` alone; fills countable/reason/probe_value. */
static void probe_code(int code, met_event_info *info)
{
    int set = PAPI_NULL;
    const char *stage = "create";
    long long value = 0;
    int rc = PAPI_create_eventset(&set);
    if (rc == PAPI_OK) {
        stage = "add";
        rc = PAPI_add_event(set, code);
    }
    if (rc == PAPI_OK) {
        stage = "start";
        rc = PAPI_start(set);
        if (rc == PAPI_OK) {
            probe_workload();
            stage = "stop";
            rc = PAPI_stop(set, &value);
        }
    }
    info->countable = rc == PAPI_OK;
    info->probe_value = rc == PAPI_OK ? value : 0;
    if (rc != PAPI_OK)
        snprintf(info->reason, sizeof info->reason, "%s: %.200s", stage, PAPI_strerror(rc));
    else
        info->reason[0] = '\0';
    if (set != PAPI_NULL) {
        PAPI_cleanup_eventset(set);
        PAPI_destroy_eventset(&set);
    }
}

static void fill_info(int code, int kind, met_event_info *info)
{
    PAPI_event_info_t pi;
    memset(info, 0, sizeof *info);
    info->kind = kind;
    if (PAPI_get_event_info(code, &pi) == PAPI_OK) {
        snprintf(info->name, sizeof info->name, "%.127s", pi.symbol);
        snprintf(info->descr, sizeof info->descr, "%.255s", pi.short_descr[0] ? pi.short_descr
                                                                          : pi.long_descr);
        if (kind == MET_EVENT_NATIVE) {
            const PAPI_component_info_t *ci = PAPI_get_component_info(pi.component_index);
            if (ci)
                snprintf(info->component, sizeof info->component, "%.63s", ci->name);
        }
    } else {
        PAPI_event_code_to_name(code, info->name);
    }
}

typedef struct event_vec {
    met_event_info *v;
    size_t n, cap;
} event_vec;

static met_event_info *vec_push(event_vec *ev)
{
    if (ev->n == ev->cap) {
        size_t cap = ev->cap ? 2 * ev->cap : 256;
        met_event_info *nv = realloc(ev->v, cap * sizeof *nv);
        if (!nv)
            return NULL;
        ev->v = nv;
        ev->cap = cap;
    }
    return &ev->v[ev->n++];
}

static int list_presets(event_vec *ev, eng_err *err)
{
    int code = PAPI_PRESET_MASK;
    if (PAPI_enum_event(&code, PAPI_ENUM_FIRST) != PAPI_OK)
        return ENG_OK;
    do {
        met_event_info *info = vec_push(ev);
        if (!info)
            return eng_err_set(err, ENG_ENOMEM, "out of memory listing events");
        fill_info(code, MET_EVENT_PRESET, info);
        probe_code(code, info);
    } while (PAPI_enum_event(&code, PAPI_ENUM_EVENTS) == PAPI_OK);
    return ENG_OK;
}

static int list_natives(event_vec *ev, eng_err *err)
{
    for (int cid = 0; cid < PAPI_num_components(); cid++) {
        const PAPI_component_info_t *ci = PAPI_get_component_info(cid);
        if (!ci || ci->disabled)
            continue;
        int code = PAPI_NATIVE_MASK;
        if (PAPI_enum_cmp_event(&code, PAPI_ENUM_FIRST, cid) != PAPI_OK)
            continue;
        do {
            met_event_info *info = vec_push(ev);
            if (!info)
                return eng_err_set(err, ENG_ENOMEM, "out of memory listing events");
            fill_info(code, MET_EVENT_NATIVE, info);
            probe_code(code, info);
        } while (PAPI_enum_cmp_event(&code, PAPI_ENUM_EVENTS, cid) == PAPI_OK);
    }
    return ENG_OK;
}

/* ---- the perf_event_open fallback ---------------------------------------
 * Where PAPI's perf_event component is disabled (libpfm4 finds no core PMU,
 * as on some VMs), PAPI lists no perf:: events at all, yet the kernel still
 * counts its software events. metrics/counters.c then counts through
 * perf_event_open(2), so the catalogue lists what that backend can count:
 * libpfm4's generic "perf" PMU, each event probed through the same backend
 * a run would use. */

int met_papi_perf_component_active(void)
{
    for (int cid = 0; cid < PAPI_num_components(); cid++) {
        const PAPI_component_info_t *ci = PAPI_get_component_info(cid);
        if (ci && !strcmp(ci->name, "perf_event"))
            return !ci->disabled;
    }
    return 0;
}

/* Counts `name` alone through the perf_event_open backend around the probe
 * workload. ENG_EINVAL when libpfm4 does not know the name. */
static int probe_perf(const char *name, met_event_info *info, eng_err *err)
{
    met_counters_opts o = {.backend = MET_BACKEND_PERF};
    met_counters *c;
    int rc = met_counters_open(&c, &name, 1, &o, err);
    if (rc)
        return rc;
    snprintf(info->component, sizeof info->component, "perf_event_open");
    const met_event_status *st = met_counters_status(c, 0);
    info->countable = st->active;
    snprintf(info->reason, sizeof info->reason, "%s", st->active ? "" : st->reason);
    info->probe_value = 0;
    if (st->active) {
        met_counters_thread *t = met_counters_thread_get(c);
        met_sample a, b;
        met_counters_read(t, &a);
        probe_workload();
        met_counters_read(t, &b);
        info->probe_value = b.v[MET_S_EVENT0] - a.v[MET_S_EVENT0];
    }
    met_counters_free(c);
    return ENG_OK;
}

static int list_perf_fallback(event_vec *ev, eng_err *err)
{
    if (pfm_initialize() != PFM_SUCCESS)
        return ENG_OK; /* nothing to list; the counters say why when asked */
    pfm_pmu_info_t pinfo;
    memset(&pinfo, 0, sizeof pinfo);
    pinfo.size = sizeof pinfo;
    if (pfm_get_pmu_info(PFM_PMU_PERF_EVENT, &pinfo) != PFM_SUCCESS || !pinfo.is_present)
        return ENG_OK;
    for (int idx = pinfo.first_event; idx != -1; idx = pfm_get_event_next(idx)) {
        pfm_event_info_t e;
        memset(&e, 0, sizeof e);
        e.size = sizeof e;
        if (pfm_get_event_info(idx, PFM_OS_PERF_EVENT, &e) != PFM_SUCCESS)
            continue;
        met_event_info *info = vec_push(ev);
        if (!info)
            return eng_err_set(err, ENG_ENOMEM, "out of memory listing events");
        memset(info, 0, sizeof *info);
        info->kind = MET_EVENT_NATIVE;
        snprintf(info->name, sizeof info->name, "perf::%.100s", e.name);
        snprintf(info->descr, sizeof info->descr, "%.255s", e.desc ? e.desc : "");
        eng_err perr = {0};
        if (probe_perf(info->name, info, &perr)) {
            info->countable = 0;
            snprintf(info->reason, sizeof info->reason, "%.255s", perr.msg);
        }
    }
    return ENG_OK;
}

int met_events_list(int kinds, met_event_info **out, size_t *n, eng_err *err)
{
    int rc = met_papi_init(err);
    if (rc)
        return rc;
    event_vec ev = {0};
    if (kinds & MET_EVENT_PRESET)
        rc = list_presets(&ev, err);
    if (!rc && (kinds & MET_EVENT_NATIVE))
        rc = list_natives(&ev, err);
    if (!rc && (kinds & MET_EVENT_NATIVE) && !met_papi_perf_component_active())
        rc = list_perf_fallback(&ev, err);
    if (rc) {
        free(ev.v);
        return rc;
    }
    *out = ev.v;
    *n = ev.n;
    return ENG_OK;
}

int met_event_probe(const char *name, met_event_info *info, eng_err *err)
{
    int rc = met_papi_init(err);
    if (rc)
        return rc;
    int code;
    if (PAPI_event_name_to_code(name, &code) != PAPI_OK) {
        /* Without PAPI's perf_event component its perf:: names are unknown
         * to PAPI but not to the perf_event_open backend a run falls back to. */
        memset(info, 0, sizeof *info);
        snprintf(info->name, sizeof info->name, "%.127s", name);
        info->kind = MET_EVENT_NATIVE;
        if (met_papi_perf_component_active() || strncmp(name, "perf::", 6) ||
            probe_perf(name, info, err) != ENG_OK)
            return eng_err_set(err, ENG_EINVAL, "unknown event '%s' (see 'moebench events')",
                               name);
        return ENG_OK;
    }
    fill_info(code, IS_PRESET(code) ? MET_EVENT_PRESET : MET_EVENT_NATIVE, info);
    probe_code(code, info);
    return ENG_OK;
}
