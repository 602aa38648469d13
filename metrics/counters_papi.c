/*
 * counters_papi.c — the PAPI backend of met_counters (low-level API through
 * the perf_event component).
 *
 * Set-up probes each name on the opening thread, in order, on top of the
 * events already kept: PAPI_add_event, then PAPI_start + PAPI_stop. An add
 * that fails ("Event does not exist" for a preset this CPU has no mapping
 * for, or on a VM without a PMU) or a start that fails ("Permission level
 * does not permit operation", a conflict with the events already in the
 * set) drops that name with PAPI's reason and removes it again; the others
 * go on. With multiplexing the set is bound to the perf_event component and
 * converted with PAPI_set_multiplex before the first add, so PAPI accepts
 * more events than there are counters and scales each by the kernel's
 * enabled/running times (PAPI does not expose the times themselves).
 *
 * Each thread then builds its own set from the kept codes
 * (met_counters_attach_papi): PAPI event sets count the thread that started
 * them.
 */
#include "metrics/counters_impl.h"
#include "metrics/papi.h"

#include <papi.h>
#include <stdio.h>
#include <string.h>

static int new_set(const met_counters *c, int *set, const char **stage);
static void free_set(int *set);

int met_counters_papi_usable(int multiplex, int *cidx, char *why, size_t cap)
{
    eng_err e = {0};
    *cidx = -1;
    if (met_papi_init(&e) != ENG_OK) {
        snprintf(why, cap, "%s", e.msg);
        return 0;
    }
    int idx = PAPI_get_component_index("perf_event");
    const PAPI_component_info_t *ci = idx >= 0 ? PAPI_get_component_info(idx) : NULL;
    if (!ci) {
        snprintf(why, cap, "PAPI has no perf_event component");
        return 0;
    }
    if (ci->disabled) {
        snprintf(why, cap, "PAPI perf_event component disabled: %s", ci->disabled_reason);
        return 0;
    }
    *cidx = idx;
    if (!multiplex)
        return 1;
    /* PAPI_set_multiplex needs PAPI_TOT_CYC as its time base even with the
     * kernel's multiplexing: on a VM without a PMU it fails ("Event does
     * not exist"), and the perf_event_open backend multiplexes instead. */
    met_counters probe = {.multiplex = 1, .papi_cidx = idx};
    int set;
    const char *stage;
    int rc = new_set(&probe, &set, &stage);
    free_set(&set);
    if (rc != PAPI_OK) {
        snprintf(why, cap, "PAPI multiplexing: %s: %s", stage, PAPI_strerror(rc));
        return 0;
    }
    return 1;
}

/* An empty set, bound to perf_event and multiplexed when asked. */
static int new_set(const met_counters *c, int *set, const char **stage)
{
    *set = PAPI_NULL;
    *stage = "create";
    int rc = PAPI_create_eventset(set);
    if (rc == PAPI_OK && c->multiplex) {
        *stage = "assign component";
        rc = PAPI_assign_eventset_component(*set, c->papi_cidx);
        if (rc == PAPI_OK) {
            *stage = "set multiplex";
            rc = PAPI_set_multiplex(*set);
        }
    }
    return rc;
}

static void free_set(int *set)
{
    if (*set == PAPI_NULL)
        return;
    long long dummy[MET_COUNTERS_MAX * 2];
    PAPI_stop(*set, dummy); /* fails harmlessly when not running */
    PAPI_cleanup_eventset(*set);
    PAPI_destroy_eventset(set);
    *set = PAPI_NULL;
}

/* Tries `code` on top of the kept events of probe set `set`. */
static void probe_one(met_counters *c, int set, size_t i, int code)
{
    int rc = PAPI_add_event(set, code);
    if (rc != PAPI_OK) {
        met_counters_drop(c, i, "add: %s", PAPI_strerror(rc));
        return;
    }
    rc = PAPI_start(set);
    if (rc != PAPI_OK) {
        PAPI_remove_event(set, code);
        met_counters_drop(c, i, "start: %s%s", PAPI_strerror(rc),
                          c->n && !c->multiplex ? " (with the events before it; try multiplexing)"
                                                : "");
        return;
    }
    long long vals[MET_COUNTERS_MAX];
    PAPI_stop(set, vals);
    c->papi_code[c->n] = code;
    met_counters_keep(c, i, NULL);
}

int met_counters_setup_papi(met_counters *c, const char *const *names, size_t n, eng_err *err)
{
    int codes[MET_COUNTERS_MAX];
    for (size_t i = 0; i < n; i++) /* every name known before anything is probed */
        if (PAPI_event_name_to_code(names[i], &codes[i]) != PAPI_OK)
            return eng_err_set(err, ENG_EINVAL, "unknown event '%s' (see 'moebench events')",
                               names[i]);
    int set;
    const char *stage;
    int rc = new_set(c, &set, &stage);
    if (rc != PAPI_OK) {
        free_set(&set);
        return eng_err_set(err, ENG_EUNSUPPORTED, "PAPI event set: %s: %s", stage,
                           PAPI_strerror(rc));
    }
    for (size_t i = 0; i < n; i++)
        probe_one(c, set, i, codes[i]);
    free_set(&set);
    return ENG_OK;
}

int met_counters_attach_papi(met_counters_thread *t, char *msg, size_t cap)
{
    const met_counters *c = t->c;
    const char *stage = "register thread";
    int rc = PAPI_register_thread();
    if (rc == PAPI_OK)
        rc = new_set(c, &t->papi_set, &stage);
    for (size_t s = 0; rc == PAPI_OK && s < c->n; s++) {
        stage = "add";
        rc = PAPI_add_event(t->papi_set, c->papi_code[s]);
    }
    if (rc == PAPI_OK) {
        stage = "start";
        rc = PAPI_start(t->papi_set);
    }
    if (rc != PAPI_OK) {
        snprintf(msg, cap, "PAPI on a new thread: %s: %s", stage, PAPI_strerror(rc));
        free_set(&t->papi_set);
        return -1;
    }
    return 0;
}

int met_counters_read_papi(met_counters_thread *t, int64_t *vals)
{
    long long v[MET_COUNTERS_MAX];
    if (PAPI_read(t->papi_set, v) != PAPI_OK)
        return -1;
    for (size_t s = 0; s < t->c->n; s++)
        vals[s] = v[s];
    return 0;
}

void met_counters_detach_papi(met_counters_thread *t, int thread_exiting)
{
    if (t->papi_set == PAPI_NULL)
        return;
    free_set(&t->papi_set);
    /* Only a thread that is going away leaves PAPI: a thread that goes on
     * (the one freeing the set) keeps using PAPI's per-thread record, and
     * PAPI does not make it again after PAPI_unregister_thread. */
    if (thread_exiting)
        PAPI_unregister_thread();
}
