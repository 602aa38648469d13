/* test_static_policy.c — `generate --policy static --profile TRACE`: pins the
 * experts a profile run used most, never evicts, keeps the output of the
 * all-in-memory run and counts what the simulator counts for the same trace
 * (one implementation of the policy serves both). */
#include "tests/test.h"
#include "tests/util/model_util.h"
#include "tests/util/util.h"


#include <stdlib.h>

/* One value of a JSON file through SQLite's JSON functions. */
static char *json_value(const char *file, const char *path)
{
    char *out;
    REQUIRE(tst_sh(&out, NULL, "sqlite3 :memory: \"select json_extract(readfile('%s'), '%s')\"",
                   file, path) == 0);
    return out;
}

TEST(static_policy_pins_profile_and_matches_simulator)
{
    const char *model = tst_path("m.gguf"), *prof = tst_path("prof.moetrace");
    const char *run = tst_path("run.moetrace"), *mem = tst_path("mem.json");
    const char *cached = tst_path("cached.json");
    tu_write_model("tiny-olmoe", "q8_0", 3, 0.5, "m.gguf");
    const char *toks = "--tokens 5,9,33,70,71,72 -n 20 --threads 1";
    /* The profile: another prompt's routing. */
    REQUIRE(tst_sh(NULL, NULL, "%s generate -m %s --tokens 1,2,3,4 -n 20 --trace-out %s",
                   tst_moebench(), model, prof) == 0);
    REQUIRE(tst_sh(NULL, NULL, "%s generate -m %s %s --json > %s", tst_moebench(), model, toks,
                   mem) == 0);
    REQUIRE(tst_sh(NULL, NULL,
                   "%s generate -m %s %s --cache-experts 6 --cache-scope layer --policy static "
                   "--profile %s --trace-out %s --json > %s",
                   tst_moebench(), model, toks, prof, run, cached) == 0);
    CHECK_EQ_STR(json_value(mem, "$.tokens"), json_value(cached, "$.tokens"));
    CHECK_EQ_STR(json_value(cached, "$.cache.evictions"), "0\n");
    int hits = atoi(json_value(cached, "$.hits"));
    int misses = atoi(json_value(cached, "$.misses"));
    CHECK(hits > 0 && misses > 0);
    char *sim;
    REQUIRE(tst_sh(&sim, NULL,
                   "%s simulate %s --policy static --profile %s --cache-experts 6 "
                   "--cache-scope layer | grep -E '^(hits|misses)' | awk '{print $2}' | tr '\\n' ' '",
                   tst_moebench(), run, prof) == 0);
    char want[64];
    snprintf(want, sizeof want, "%d %d ", hits, misses);
    CHECK_EQ_STR(sim, want);
}

TEST(static_policy_needs_a_profile)
{
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s generate -m x.gguf --tokens 1 --cache-experts 2 "
                                    "--policy static", tst_moebench()), 2);
    CHECK_CONTAINS(err, "--profile");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s generate -m x.gguf --tokens 1 --cache-experts 2 "
                                    "--policy lru --profile p.moetrace", tst_moebench()), 2);
    CHECK_CONTAINS(err, "static");
}
