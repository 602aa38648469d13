/* test_simulate.c — `moebench simulate` as a user meets it: help, the
 * policy list, text and JSON output on a test-vector trace, conventions
 * echoed, exit status 2 for bad options and bad traces. */
#include "tests/test.h"

#include "metrics/trace.h"

#define VEC "tests/metrics/data/repeat-2x6k3.json"

TEST(help_and_policy_list)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s simulate --help", tst_moebench()), 0);
    CHECK_CONTAINS(out, "usage: moebench simulate TRACE");
    CHECK_CONTAINS(out, "--cache-scope");
    CHECK_CONTAINS(out, "pcie4x16");
    CHECK_CONTAINS(out, "olmoe-bf16");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s simulate --list-policies", tst_moebench()), 0);
    CHECK_CONTAINS(out, "belady");
    CHECK_CONTAINS(out, "fsf");
    CHECK_CONTAINS(out, "static");
    CHECK_CONTAINS(out, "hobbit");
    CHECK_CONTAINS(out, "layer nearness");
}

TEST(text_output_names_the_conventions)
{
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s simulate " VEC " --policy lru --cache-experts 2"
                        " --cache-scope layer", tst_moebench()), 0);
    CHECK_CONTAINS(out, "2 layers x 6 experts, top-3");
    CHECK_CONTAINS(out, "lookup sequential, start cold");
    CHECK_CONTAINS(out, "per layer");
    /* the default scope is generate's: one global pool */
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s simulate " VEC " --policy lru --cache-experts 2",
                        tst_moebench()), 0);
    CHECK_CONTAINS(out, "2 experts in one global pool");
    CHECK_CONTAINS(out, "tokens/s");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s simulate " VEC " --policy fsf --lookahead 4 --paper "
                        "--cache-experts 12 --cache-scope global", tst_moebench()), 0);
    CHECK_CONTAINS(out, "lookup token, start warm");
    CHECK_CONTAINS(out, "in one global pool");
    CHECK_CONTAINS(out, "lookahead 4");
}

TEST(json_matches_the_paper_curve)
{
    /* repeat-2x6k3.expected.json: layer 0 LRU at c = 2 is 0.5972222222222222 */
    char *out;
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s simulate " VEC " --policy lru --cache-experts 2 --paper "
                        "--layer 0 --json", tst_moebench()), 0);
    CHECK_CONTAINS(out, "\"sample_hit_rate\": 0.59722222222222");
    CHECK_CONTAINS(out, "\"lookup\": \"token\"");
    CHECK_CONTAINS(out, "\"trace\": \"" VEC "\"");
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s simulate " VEC " --policy belady --cache-experts 3 "
                        "--prefetch oracle --link nvme --expert-bytes 4M --compute-us 10 "
                        "--json | grep -c prefetch_issued", tst_moebench()), 0);
    CHECK_CONTAINS(out, "3");   /* totals + 2 layers */
}

/* A cache bigger than what holds every expert is an error, not a silent
 * clamp: 6 per layer, 12 in all for this 2-layer trace. */
TEST(cache_larger_than_the_experts_exits_2)
{
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, NULL, "%s simulate " VEC " --policy lru --cache-experts 12",
                        tst_moebench()), 0);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s simulate " VEC " --policy lru --cache-experts 13",
                        tst_moebench()), 2);
    CHECK_CONTAINS(err, "--cache-experts 13: in all 12 slots hold every expert");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s simulate " VEC " --policy lru --cache-experts 7"
                        " --cache-scope layer", tst_moebench()), 2);
    CHECK_CONTAINS(err, "per layer 6 slots hold every expert");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s simulate " VEC " --policy lru --cache-experts 7"
                        " --layer 1", tst_moebench()), 2);
}

TEST(bad_options_exit_2)
{
    const char *bad[] = {
        "--policy lru",                                     /* no --cache-experts */
        "--cache-experts 4",                                /* no --policy */
        "--policy mru --cache-experts 4",
        "--policy lru --cache-experts 0",
        "--policy lru --cache-experts x",
        "--policy lru --cache-experts 4 --cache-scope both",
        "--policy lru --cache-experts 4 --lookup eager",
        "--policy lru --cache-experts 4 --link usb",
        "--policy lru --cache-experts 4 --link-gbps -1",
        "--policy lru --cache-experts 4 --expert-bytes 12Q",
        "--policy lru --cache-experts 4 --expert-bytes gpt4",
        "--policy lru --cache-experts 4 --prefetch oracle --paper",
        "--policy lru --cache-experts 4 --layer 7",
        "--policy lru --cache-experts 4 --nonsense",
        "--policy lru --cache-experts 4 --format xml",
        "--policy lru --cache-experts 4 --lookahead 0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *err;
        int rc = tst_sh(NULL, &err, "%s simulate " VEC " %s", tst_moebench(), bad[i]);
        CHECK_MSG(rc == 2, "'%s' exited %d", bad[i], rc);
        CHECK_CONTAINS(err, "moebench simulate:");
    }
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s simulate --policy lru --cache-experts 4",
                        tst_moebench()), 2);
    CHECK_CONTAINS(err, "no trace");
}

TEST(bad_or_missing_trace_exits_2)
{
    char *err;
    const char *p = tst_path("bad.json");
    tst_write_file(p, "{\"num_layers\": 1, \"num_experts\": 4, \"top_k\": 2, \"samples\": "
                      "[[[[0, 9]]]]}", 71);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s simulate %s --policy lru --cache-experts 2",
                        tst_moebench(), p), 2);
    CHECK_CONTAINS(err, "bad.json");
    const char *q = tst_path("junk.moetrace");
    tst_write_file(q, "not a trace at all", 18);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s simulate %s --policy lru --cache-experts 2",
                        tst_moebench(), q), 2);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s simulate %s --policy lru --cache-experts 2",
                        tst_moebench(), tst_path("absent.moetrace")), 2);
}

TEST(every_trace_format_gives_the_same_replay)
{
    /* the JSON test vector converted by the trace module to .moetrace, CSV
     * and safetensors; the simulator's JSON output must not change */
    char *a, *b;
    const char *fmts[] = {"t.moetrace", "t.csv", "t_st"};
    REQUIRE(tst_sh(&a, NULL, "%s simulate " VEC " --policy lfu --cache-experts 3 --json | "
                   "grep -v '\"trace\"'", tst_moebench()) == 0);
    for (int i = 0; i < 3; i++) {
        const char *p = tst_path(fmts[i]);
        eng_err err = {0};
        met_trace *t;
        REQUIRE_MSG(met_trace_load(&t, VEC, MET_FMT_AUTO, &err) == 0, "%s", err.msg);
        REQUIRE_MSG(met_trace_save(t, p, i == 2 ? MET_FMT_SAFETENSORS : MET_FMT_AUTO, &err) == 0,
                    "%s", err.msg);
        met_trace_free(t);
        CHECK_EQ_INT(tst_sh(&b, NULL, "%s simulate %s --policy lfu --cache-experts 3 --json | "
                            "grep -v '\"trace\"'", tst_moebench(), p), 0);
        CHECK_MSG(strcmp(a, b) == 0, "%s differs", fmts[i]);
    }
}

TEST(empty_trace_is_all_zero)
{
    char *out;
    const char *p = tst_path("empty.json");
    const char *text = "{\"num_layers\": 2, \"num_experts\": 4, \"top_k\": 2, \"samples\": [[]]}";
    tst_write_file(p, text, strlen(text));
    CHECK_EQ_INT(tst_sh(&out, NULL, "%s simulate %s --policy belady --cache-experts 2 --json",
                        tst_moebench(), p), 0);
    CHECK_CONTAINS(out, "\"accesses\": 0");
    CHECK_CONTAINS(out, "\"tokens_per_s\": 0.0");
}
