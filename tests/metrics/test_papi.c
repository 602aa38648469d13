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
