/*
 * test_lowprec_cli.c — the mixed-precision options of generate and
 * perplexity (--low-precision FILE --lp-rule RULE): usage errors, the
 * counters in --json, quality against an exact base with --kl-against, and
 * the counters as samples in the results database.
 */
#include "tests/test.h"
#include "tests/util/util.h"

#include <jansson.h>
#include <string.h>

/* A tiny model m.gguf and its q4_0 companion c.gguf in the test's folder. */
static const char *setup(void)
{
    const char *dir = tst_tmpdir();
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "cd %s && %s mkmodel --preset tiny-olmoe --seed 3 -o m.gguf && "
                       "%s mkexperts -m m.gguf --type q4_0 -o c.gguf", dir, tu_mb(), tu_mb()) == 0,
                "%s", err);
    return dir;
}

TEST(usage_errors)
{
    const char *dir = setup();
    REQUIRE(tst_sh(NULL, NULL, "cd %s && %s mkmodel --preset tiny-qwen3moe -o q.gguf && "
                   "%s mkexperts -m q.gguf --type q8_0 -o qc.gguf", dir, tu_mb(), tu_mb()) == 0);
    static const struct {
        const char *args, *msg;
    } cases[] = {
        {"--cache-experts 4 --low-precision c.gguf", "--low-precision FILE and --lp-rule RULE"},
        {"--cache-experts 4 --lp-rule all", "--low-precision FILE and --lp-rule RULE"},
        {"--low-precision c.gguf --lp-rule all", "need a cache size"},
        {"--cache-experts 4 --low-precision c.gguf --lp-rule hobbit:", "is not hobbit:T"},
        {"--cache-experts 4 --low-precision c.gguf --lp-rule lru", "is not hobbit:T"},
        {"--cache-experts 4 --low-precision c.gguf --lp-rule hobbit:0.2,first", "only 'last'"},
        {"--cache-experts 4 --low-precision c.gguf --lp-rule hobbit:-1", "hobbit:T"},
        {"--cache-experts 4 --low-precision nope.gguf --lp-rule all", "nope.gguf"},
        {"--cache-experts 4 --low-precision qc.gguf --lp-rule all", "general.architecture"},
        {"--cache-experts 4 --low-precision m.gguf --lp-rule all", "moebench.lowprec.type"},
        {"--cache-experts 4 --low-precision c.gguf --lp-rule edgemoe:0.5", "needs --profile"},
        {"--cache-experts 4 --low-precision c.gguf --lp-rule edgemoe:2 --profile p.moetrace",
         "out of range"},
        {"--cache-experts 4 --profile p.moetrace", "--lp-rule edgemoe:Q only"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err;
        int rc = tst_sh(NULL, &err, "cd %s && %s generate -m m.gguf -p Hi -n 2 %s", dir, tu_mb(),
                        cases[i].args);
        CHECK_MSG(rc == 2, "%s: exit %d", cases[i].args, rc);
        CHECK_CONTAINS(err, cases[i].msg);
    }
}

TEST(generate_reports_low_precision)
{
    const char *dir = setup();
    json_t *j = tu_sh_json("cd %s && %s generate -m m.gguf -p 'Hello there, old friend' -n 6 "
                           "--cache-experts 8 --low-precision c.gguf --lp-rule hobbit:0.1,last "
                           "--json 2>/dev/null", dir, tu_mb());
    json_t *c = json_object_get(j, "cache");
    REQUIRE(json_is_object(c));
    json_int_t acc = json_integer_value(json_object_get(c, "accesses"));
    json_int_t served = json_integer_value(json_object_get(c, "lp_served"));
    json_int_t loads = json_integer_value(json_object_get(c, "lp_loads"));
    json_int_t misses = json_integer_value(json_object_get(c, "misses"));
    CHECK(served > 0 && served < acc);
    CHECK(loads > 0 && loads <= misses);
    CHECK_EQ_INT(json_integer_value(json_object_get(c, "lp_bytes")), loads * 3456); /* q4_0 expert */
    CHECK_EQ_STR(json_string_value(json_object_get(c, "lp_type")), "q4_0");
    CHECK_EQ_STR(json_string_value(json_object_get(c, "lp_rule")), "hobbit:0.1,last");
    CHECK(json_is_integer(json_object_get(json_array_get(json_object_get(c, "layers"), 0),
                                          "lp_served")));
    json_decref(j);
    /* text mode: the third cache line */
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "cd %s && %s generate -m m.gguf -p Hello -n 2 --cache-experts 8 "
                        "--low-precision c.gguf --lp-rule hobbit:0.1", dir, tu_mb()), 0);
    CHECK_CONTAINS(err, "cache: low precision (q4_0, hobbit:0.1): ");
    CHECK_CONTAINS(err, "the prompt runs token by token");
    /* HOBBIT's pregate: prefetches by precision (prefetch_low of
     * prefetch_issued), the depth left out (pregate_skipped) */
    j = tu_sh_json("cd %s && %s generate -m m.gguf -p 'Hello there, old friend' -n 16 "
                   "--cache-experts 24 --low-precision c.gguf --lp-rule hobbit:0.1,last "
                   "--prefetch pregate --pregate-ahead 3 --pregate-adaptive 0.4 --policy hobbit "
                   "--json 2>/dev/null", dir, tu_mb());
    c = json_object_get(j, "cache");
    json_int_t pf = json_integer_value(json_object_get(c, "prefetch_issued"));
    json_int_t pf_low = json_integer_value(json_object_get(c, "prefetch_low"));
    CHECK_MSG(pf_low > 0 && pf_low < pf, "%lld of %lld prefetches low", (long long)pf_low,
              (long long)pf);
    CHECK(json_integer_value(json_object_get(c, "lp_loads")) >= pf_low);
    CHECK(json_integer_value(json_object_get(c, "pregate_skipped")) > 0);
    json_decref(j);
}

/* EdgeMoE's rule from a profile trace: the least used half always low. */
TEST(generate_edgemoe_from_profile)
{
    const char *dir = setup();
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "cd %s && %s generate -m m.gguf -p 'The cat sat on the mat' "
                       "-n 12 --batch 1 --trace-out p.moetrace", dir, tu_mb()) == 0, "%s", err);
    json_t *j = tu_sh_json("cd %s && %s generate -m m.gguf -p 'Hello there' -n 6 "
                           "--cache-experts 8 --low-precision c.gguf --lp-rule edgemoe:0.5 "
                           "--profile p.moetrace --json", dir, tu_mb());
    json_t *c = json_object_get(j, "cache");
    json_int_t acc = json_integer_value(json_object_get(c, "accesses"));
    json_int_t served = json_integer_value(json_object_get(c, "lp_served"));
    CHECK(served > 0 && served < acc);
    CHECK_EQ_INT(json_integer_value(json_object_get(c, "lp_upgrades")), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(c, "lp_rule")), "edgemoe:0.5");
    json_decref(j);
}

/* Quality against an exact base, and the counters in the database. */
TEST(perplexity_quality_and_suite)
{
    const char *dir = setup();
    char src[1600];
    snprintf(src, sizeof src,
             "suite{name='mixed'}\n"
             "experiment{name='base', argv={'perplexity', '-m', '%s/m.gguf', '-f', '%s/t.txt',"
             " '--ctx', '32', '--batch', '1', '--chunks', '2', '--json', '--kl-base', '%s/b.kl'}}\n"
             "for _, r in ipairs{'hobbit:0.1', 'all'} do\n"
             "  experiment{name='mixed', params={rule=r}, argv={'perplexity', '-m', '%s/m.gguf',"
             " '--json', '--kl-against', '%s/b.kl', '--chunks', '2', '--cache-experts', '8',"
             " '--low-precision', '%s/c.gguf', '--lp-rule', r}}\n"
             "end\n", dir, dir, dir, dir, dir, dir);
    tu_write_text("t.txt", "The quick brown fox jumps over the lazy dog, and the cat sat on the "
                           "mat. The quick brown fox jumps over the lazy dog again and again.");
    const char *suite = tu_write_text("s.lua", src), *db = tst_path("q.db");
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "%s run %s --db %s -q", tu_mb(), suite, db) == 0, "%s", err);
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'kl_mean' and value > 0"),
                 "2");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'cache.lp_loads' and"
                           " value > 0"), "2");
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample where metric = 'cache.lp_served'"), "2");
    /* every access low with `all` */
    CHECK_EQ_STR(tu_q1(db, "select count(*) from sample a join sample b using (experiment_id)"
                           " where a.metric = 'cache.lp_served' and b.metric = 'cache.accesses'"
                           " and a.value = b.value"), "1");
}

/* The replay simulator runs the same rules: on the trace of an engine run
 * it counts the same accesses, hits, evictions, low loads, low accesses,
 * upgrades and bytes (scopes, policies, a batched prompt with edgemoe). */
TEST(simulate_matches_engine)
{
    const char *dir = setup();
    char *err;
    REQUIRE_MSG(tst_sh(NULL, &err, "cd %s && %s generate -m m.gguf -p 'The cat sat on the mat' "
                       "-n 12 --batch 1 --trace-out p.moetrace", dir, tu_mb()) == 0, "%s", err);
    static const struct {
        const char *cache, *rule;
    } cases[] = {
        {"--cache-scope layer --cache-experts 8", "hobbit:0.1,last"},
        {"--cache-experts 40", "hobbit:0.1,last"},
        {"--cache-experts 24 --policy lfu", "hobbit:0.08"},
        {"--cache-experts 24 --policy fifo", "hobbit:last"},
        {"--cache-experts 24 --policy hobbit", "hobbit:0.1,last"},
        {"--cache-scope layer --cache-experts 6 --policy hobbit --hobbit-weights 0,1,3,0",
         "hobbit:0.1"},
        {"--cache-experts 20", "edgemoe:0.5 --profile p.moetrace"},
        {"--cache-experts 20", "all"},
    };
    static const char *const keys[] = {"accesses", "hits", "misses", "evictions",
                                       "lp_loads", "lp_served", "lp_upgrades"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *g = tu_sh_json("cd %s && %s generate -m m.gguf -p 'Hello world, the quick brown'"
                               " -n 16 %s --low-precision c.gguf --lp-rule %s --trace-out r.moetrace"
                               " --json 2>/dev/null", dir, tu_mb(), cases[i].cache, cases[i].rule);
        json_t *s = tu_sh_json("cd %s && %s simulate r.moetrace --policy lru %s --expert-bytes 24576"
                               " --lp-bytes 3456 --lp-rule %s --json", dir, tu_mb(), cases[i].cache,
                               cases[i].rule);
        const json_t *gc = json_object_get(g, "cache"), *st = json_object_get(s, "totals");
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            CHECK_MSG(json_integer_value(json_object_get(gc, keys[k])) ==
                          json_integer_value(json_object_get(st, keys[k])),
                      "%s %s: %s: engine %lld, simulate %lld", cases[i].cache, cases[i].rule,
                      keys[k], (long long)json_integer_value(json_object_get(gc, keys[k])),
                      (long long)json_integer_value(json_object_get(st, keys[k])));
        CHECK(json_integer_value(json_object_get(gc, "lp_loads")) > 0);
        CHECK_NEAR(json_integer_value(json_object_get(gc, "bytes_demand")),
                   json_real_value(json_object_get(st, "bytes_moved")), 0.5);
        json_decref(g);
        json_decref(s);
    }
    /* usage */
    static const struct {
        const char *args, *msg;
    } bad[] = {
        {"--lp-bytes 3456", "go together"},
        {"--lp-rule all", "go together"},
        {"--lp-bytes 3456 --lp-rule all --paper", "--lookup sequential --start cold"},
        {"--lp-bytes x --lp-rule all", "--lp-bytes"},
        {"--lp-bytes 3456 --lp-rule nope", "is not hobbit:T"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tst_sh(NULL, &err, "cd %s && %s simulate p.moetrace --policy lru "
                        "--cache-experts 8 %s", dir, tu_mb(), bad[i].args);
        CHECK_MSG(rc == 2, "%s: exit %d", bad[i].args, rc);
        CHECK_CONTAINS(err, bad[i].msg);
    }
}
