/* test_counters_cli.c — `moebench events --preset/--events` and
 * `moebench bench-counters` as a user meets them. */
#include "tests/test.h"

#include <jansson.h>

TEST(events_preset_shows_used_and_dropped)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s events --preset default", tst_moebench()), 0);
    CHECK_CONTAINS(out, "preset default: backend ");
    CHECK_CONTAINS(out, "perf::TASK-CLOCK");
    CHECK_CONTAINS(out, "getrusage are always recorded");
    /* with a PMU the presets are used, without one dropped with a reason */
    CHECK(strstr(out, "PAPI_TOT_INS                 used") || strstr(out, "DROPPED: "));
}

TEST(events_preset_all_json_lists_every_preset)
{
    char *out;
    REQUIRE(tst_sh(&out, NULL, "%s events --preset all --json", tst_moebench()) == 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    REQUIRE_MSG(j, "bad JSON: %s", je.text);
    json_t *sets = json_object_get(j, "sets");
    CHECK_EQ_INT(json_array_size(sets), 4);
    json_t *ev = json_object_get(json_array_get(sets, 3), "events");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(ev, 0), "name")),
                 "perf::TASK-CLOCK");
    CHECK(json_is_true(json_object_get(json_array_get(ev, 0), "used")));
    json_decref(j);
}

TEST(events_perf_backend_and_multiplex)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s events --events perf::TASK-CLOCK,perf::CS --backend perf "
                        "--multiplex", tst_moebench()), 0);
    CHECK_CONTAINS(out, "backend perf_event_open, multiplexed");
    CHECK_CONTAINS(out, "2 of 2 events used");
}

TEST(unknown_preset_or_event_is_exit_2_naming_it)
{
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s events --preset nosuch", tst_moebench()), 2);
    CHECK_CONTAINS(err, "'nosuch'");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s events --events perf::TASK-CLOCK,NOPE_X", tst_moebench()),
                 2);
    CHECK_CONTAINS(err, "'NOPE_X'");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s events --preset default --backend nope", tst_moebench()),
                 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s bench-counters --events NOPE_Y", tst_moebench()), 2);
    CHECK_CONTAINS(err, "'NOPE_Y'");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s bench-counters --iters 0", tst_moebench()), 2);
}

TEST(bench_counters_synthetic_table)
{
    char *out;
    REQUIRE(tst_sh(&out, NULL, "%s bench-counters --synthetic 3 --token-ms 2 --json",
                   tst_moebench()) == 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    REQUIRE_MSG(j, "bad JSON: %s", je.text);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "tokens")), 3);
    json_t *regs = json_object_get(j, "regions");
    CHECK_EQ_INT(json_array_size(regs), 7); /* no shared expert, no loads */
    json_t *ffn = json_array_get(regs, 3);
    CHECK_EQ_STR(json_string_value(json_object_get(ffn, "region")), "expert_ffn");
    CHECK_EQ_INT(json_integer_value(json_object_get(ffn, "calls")), 3 * 32);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "nesting_errors")), 0);
    json_decref(j);
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s bench-counters --synthetic 1 --token-ms 1", tst_moebench()),
                 0);
    CHECK_CONTAINS(out, "expert_wait");
    CHECK_CONTAINS(out, "derived");
}

TEST(bench_counters_overhead_runs)
{
    char *out;
    REQUIRE(tst_sh(&out, NULL, "%s bench-counters --iters 2000 --tokens 2 --token-ms 1 --json",
                   tst_moebench()) == 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    REQUIRE_MSG(j, "bad JSON: %s", je.text);
    CHECK(json_real_value(json_object_get(j, "pair_ns_events")) > 0);
    CHECK(json_real_value(json_object_get(j, "pair_ns_off")) <
          json_real_value(json_object_get(j, "pair_ns_events")));
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "pairs_per_token")), 47);
    json_decref(j);
}

TEST(bench_counters_model_times_the_same_steps_on_and_off)
{
    /* The real-engine mode decodes each step twice (counters on and off);
     * its greedy tokens must be what `generate` gives for the same prompt,
     * and both passes of every step bit-identical. */
    const char *m = tst_path("tiny.gguf");
    REQUIRE(tst_sh(NULL, NULL, "%s mkmodel --preset tiny-olmoe --type q8_0 -o %s",
                   tst_moebench(), m) == 0);
    char *out, *gen;
    REQUIRE(tst_sh(&out, NULL, "%s bench-counters --model %s --steps 6 --prompt 4 --json",
                   tst_moebench(), m) == 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    REQUIRE_MSG(j, "bad JSON: %s", je.text);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "mismatches")), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "steps")), 6);
    CHECK(json_real_value(json_object_get(j, "pairs_per_token")) >= 3);
    double readings = json_real_value(json_object_get(j, "readings_per_token"));
    double pairs = json_real_value(json_object_get(j, "pairs_per_token"));
    CHECK(readings > pairs && readings <= 2 * pairs);
    CHECK(json_real_value(json_object_get(j, "cpu_ratio")) > 0);
    CHECK(json_real_value(json_object_get(j, "cpu_ratio_lo")) <=
          json_real_value(json_object_get(j, "cpu_ratio_hi")));
    char prompt[128] = "";
    json_t *jp = json_object_get(j, "prompt");
    REQUIRE(json_array_size(jp) == 4);
    for (size_t i = 0; i < 4; i++)
        snprintf(prompt + strlen(prompt), sizeof prompt - strlen(prompt), "%s%lld",
                 i ? "," : "", (long long)json_integer_value(json_array_get(jp, i)));
    REQUIRE(tst_sh(&gen, NULL, "%s generate -m %s --tokens %s -n 7 --ignore-eos --json",
                   tst_moebench(), m, prompt) == 0);
    json_t *g = json_loads(gen, 0, &je);
    REQUIRE_MSG(g, "bad JSON: %s", je.text);
    json_t *gt = json_object_get(g, "tokens"), *bt = json_object_get(j, "tokens");
    REQUIRE(json_array_size(bt) == 6 && json_array_size(gt) >= 6);
    for (size_t i = 0; i < 6; i++)
        CHECK_EQ_INT(json_integer_value(json_array_get(bt, i)),
                     json_integer_value(json_array_get(gt, i)));
    json_decref(g);
    json_decref(j);
}

TEST(bench_counters_model_errors)
{
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s bench-counters --model %s", tst_moebench(),
                        tst_path("missing.gguf")),
                 1); /* an I/O error, as for generate */
    CHECK_CONTAINS(err, "missing.gguf");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s bench-counters --model x --synthetic 3", tst_moebench()),
                 2);
    CHECK_CONTAINS(err, "--synthetic");
}
