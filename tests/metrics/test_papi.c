/* test_papi.c — the probed event catalogue (metrics/papi.c). */
#include "tests/test.h"

#include "metrics/papi.h"

#include <stdlib.h>

TEST(software_events_count_here)
{
    eng_err err = {0};
    met_event_info info;
    REQUIRE_MSG(met_event_probe("perf::TASK-CLOCK", &info, &err) == ENG_OK, "%s", err.msg);
    CHECK(info.countable);
    CHECK(info.probe_value > 0); /* the probe workload takes some CPU time */
    CHECK_EQ_STR(info.reason, "");
}

TEST(unknown_event_is_einval_naming_it)
{
    eng_err err = {0};
    met_event_info info;
    CHECK_EQ_INT(met_event_probe("NO_SUCH_EVENT_XYZ", &info, &err), ENG_EINVAL);
    CHECK_CONTAINS(err.msg, "NO_SUCH_EVENT_XYZ");
}

TEST(listing_has_presets_and_natives)
{
    eng_err err = {0};
    met_event_info *ev;
    size_t n;
    REQUIRE(met_events_list(MET_EVENT_PRESET | MET_EVENT_NATIVE, &ev, &n, &err) == ENG_OK);
    size_t presets = 0, natives = 0, task_clock = 0;
    for (size_t i = 0; i < n; i++) {
        presets += ev[i].kind == MET_EVENT_PRESET;
        natives += ev[i].kind == MET_EVENT_NATIVE;
        if (!strcmp(ev[i].name, "perf::TASK-CLOCK"))
            task_clock += ev[i].countable;
        CHECK_MSG(ev[i].countable || ev[i].reason[0], "%s: no reason given", ev[i].name);
    }
    CHECK(presets > 50);   /* PAPI 7 defines over a hundred presets */
    CHECK(natives > 10);
    CHECK_EQ_INT(task_clock, 1);
    free(ev);
}

TEST(perf_events_come_from_papi_or_the_perf_event_open_fallback)
{
    /* Whichever world this machine is in, a listed perf:: event names the
     * backend that counts it: PAPI's perf_event component when active, the
     * perf_event_open fallback when PAPI disabled that component. */
    eng_err err = {0};
    met_event_info *ev;
    size_t n;
    REQUIRE(met_events_list(MET_EVENT_NATIVE, &ev, &n, &err) == ENG_OK);
    const char *want = met_papi_perf_component_active() ? "perf_event" : "perf_event_open";
    size_t perf = 0, page_faults_counted = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(ev[i].name, "perf::", 6))
            continue;
        perf++;
        CHECK_MSG(!strcmp(ev[i].component, want), "%s: component %s, want %s", ev[i].name,
                  ev[i].component, want);
        if (!strcmp(ev[i].name, "perf::PAGE-FAULTS") && ev[i].countable)
            page_faults_counted++;
    }
    CHECK(perf > 10);
    CHECK_EQ_INT(page_faults_counted, 1);
    free(ev);
}
