/* test_offload_cli.c — `moebench generate` with expert offloading: same
 * tokens as the all-in-memory run, counters in the JSON, and hit counts
 * equal to `moebench simulate --lookup sequential --start cold` on the
 * trace the run recorded (one implementation of each policy serves both),
 * with the prompt token by token and batched (the simulator replays the
 * batches the trace records), for every architecture's tiny preset. */
#include "engine/mkmodel.h"
#include "tests/test.h"
#include "tests/util/model_util.h"
#include "tests/util/util.h"

#include <jansson.h>
#include <string.h>

static const char *model(const char *preset)
{
    return tu_write_model(preset, "q8_0", 3, 0.5, "m.gguf");
}

static json_t *run_json(const char *fmt_args, const char *m, const char *extra)
{
    return tu_sh_json("%s generate -m '%s' --tokens 5,9,13,2 -n 8 --ignore-eos --threads 2 "
                      "--json %s %s", tst_moebench(), m, fmt_args, extra ? extra : "");
}

static long long jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return v ? json_integer_value(v) : -1;
}

/* The engine's hits and misses (run JSON j) equal `simulate` on trace with
 * the same policy and scope. */
static void check_sim(json_t *j, const char *trace, const char *pol, const char *scope,
                      const char *args)
{
    long long hits = jint(j, "hits"), miss = jint(j, "misses");
    char *out, *err;
    int rc = tst_sh(&out, &err,
                    "%s simulate '%s' --policy %s --cache-experts 3 --cache-scope %s "
                    "--lookup sequential --start cold --json",
                    tst_moebench(), trace, pol, scope);
    REQUIRE_MSG(rc == 0, "simulate: %s", err);
    json_t *sim = json_loads(out, 0, NULL);
    REQUIRE(sim);
    json_t *tot = json_object_get(sim, "totals");
    CHECK_MSG(jint(tot, "hits") == hits && jint(tot, "misses") == miss,
              "%s: engine %lld/%lld, simulate %lld/%lld", args, hits, miss, jint(tot, "hits"),
              jint(tot, "misses"));
    json_decref(sim);
}

/* Every policy, both scopes, against the memory store and the simulator,
 * the prompt token by token (--batch 1: the oracles' --trace-in replays
 * need a trace recorded that way). Dense leading layers (deepseek2) route
 * nothing: the counts are per MoE layer. */
static void check_token_by_token(const char *m, const char *preset)
{
    const eng_mkmodel_preset *hp = eng_mkmodel_preset_find(preset);
    const long long moe_layers = hp->n_layer - hp->n_layer_dense;
    char trace_arg[600];
    snprintf(trace_arg, sizeof trace_arg, "--batch 1 --trace-out '%s'", tst_path("t.moetrace"));
    json_t *ref = run_json(trace_arg, m, NULL);
    json_t *ref_tokens = json_object_get(ref, "tokens");
    const char *pols[] = {"lru", "lfu", "fifo", "belady", "fsf", "hobbit"};
    const char *scopes[] = {"global", "layer"};
    for (size_t p = 0; p < 6; p++)
        for (int s = 0; s < 2; s++) {
            char args[800];
            snprintf(args, sizeof args,
                     "--policy %s --cache-experts 3 --cache-scope %s --trace-in '%s'%s", pols[p],
                     scopes[s], tst_path("t.moetrace"),
                     p % 2 ? (p == 3 ? " --link pcie4x16 --link-copy map" : " --link pcie4x16")
                           : "");
            json_t *j = run_json(args, m, NULL);
            CHECK_MSG(json_equal(json_object_get(j, "tokens"), ref_tokens), "%s: tokens differ",
                      args);
            long long acc = jint(j, "accesses"), hits = jint(j, "hits"), miss = jint(j, "misses");
            CHECK_MSG(acc == 12LL * moe_layers * hp->n_expert_used && hits + miss == acc,
                      "%s: %lld + %lld != %lld", args, hits, miss, acc);
            CHECK(json_array_size(json_object_get(json_object_get(j, "cache"), "layers")) ==
                  (size_t)moe_layers);
            check_sim(j, tst_path("t.moetrace"), pols[p], scopes[s], args);
            json_decref(j);
        }
    json_decref(ref);
}

/* The default batched prompt: recording changes nothing (same tokens with
 * and without --trace-out), and the simulator, replaying the prompt in the
 * batches the trace records, counts what the engine's store counted: per
 * layer each expert of the 4-token prompt once, then k per generated
 * token. */
static void check_batched(const char *m, const char *preset)
{
    const eng_mkmodel_preset *hp = eng_mkmodel_preset_find(preset);
    const long long moe_layers = hp->n_layer - hp->n_layer_dense;
    json_t *plain = run_json("", m, NULL);
    const char *pols[] = {"lru", "lfu", "fifo", "hobbit"};
    const char *scopes[] = {"global", "layer"};
    for (size_t p = 0; p < 4; p++)
        for (int s = 0; s < 2; s++) {
            char args[800];
            snprintf(args, sizeof args, "--policy %s --cache-experts 3 --cache-scope %s "
                     "--trace-out '%s'", pols[p], scopes[s], tst_path("b.moetrace"));
            json_t *j = run_json(args, m, NULL);
            CHECK_MSG(json_equal(json_object_get(j, "tokens"), json_object_get(plain, "tokens")),
                      "%s: tokens differ from the untraced in-memory run", args);
            long long acc = jint(j, "accesses");
            CHECK_MSG(acc > 8LL * moe_layers * hp->n_expert_used &&
                          acc <= 12LL * moe_layers * hp->n_expert_used,
                      "%s: %lld accesses", args, acc);
            check_sim(j, tst_path("b.moetrace"), pols[p], scopes[s], args);
            json_decref(j);
        }
    json_decref(plain);
}

static void check_offload(const char *preset)
{
    const char *m = model(preset);
    check_token_by_token(m, preset);
    check_batched(m, preset);
    json_t *ref = run_json("", m, NULL);
    json_t *ref_tokens = json_object_get(ref, "tokens");
    /* pregate 2 layers ahead, wrapping, over a mapped link: same tokens */
    json_t *j = run_json("--cache-experts 6 --prefetch pregate --pregate-ahead 2 --pregate-wrap "
                         "--link nvme --link-copy map", m, NULL);
    CHECK(json_equal(json_object_get(j, "tokens"), ref_tokens));
    json_t *c = json_object_get(j, "cache");
    CHECK(jint(c, "pregate_ahead") == 2 && json_is_true(json_object_get(c, "pregate_wrap")));
    CHECK(!strcmp(json_string_value(json_object_get(c, "link_mode")), "map"));
    CHECK(!strcmp(json_string_value(json_object_get(c, "io_mode")), "link-map"));
    CHECK(!strcmp(json_string_value(json_object_get(c, "dense_weights")), "mapped"));
    json_decref(j);
    /* HOBBIT's adaptive depth: same tokens, some predictions left out */
    j = run_json("--cache-experts 6 --prefetch pregate --pregate-ahead 3 --pregate-adaptive 0.9",
                 m, NULL);
    CHECK(json_equal(json_object_get(j, "tokens"), ref_tokens));
    c = json_object_get(j, "cache");
    CHECK(json_real_value(json_object_get(c, "pregate_adaptive")) == 0.9);
    CHECK(jint(c, "pregate_skipped") > 0);
    json_decref(j);
    /* ExpertFlow's correction on a slow link: same tokens, the counts */
    j = run_json("--cache-experts 6 --prefetch pregate --pregate-ahead 2 --prefetch-correct "
                 "--link-gbps 0.2", m, NULL);
    CHECK(json_equal(json_object_get(j, "tokens"), ref_tokens));
    c = json_object_get(j, "cache");
    CHECK(json_is_true(json_object_get(c, "prefetch_correct")));
    CHECK(jint(c, "prefetch_cancelled") >= 0 &&
          jint(c, "bytes_cancelled") == jint(c, "prefetch_cancelled") * jint(c, "expert_bytes"));
    CHECK(jint(json_array_get(json_object_get(c, "layers"), 0), "prefetch_cancelled") >= 0);
    json_decref(j);
    /* the file tier reads the model's dense weights into private memory */
    j = run_json("--cache-experts 6", m, NULL);
    c = json_object_get(j, "cache");
    CHECK(!strcmp(json_string_value(json_object_get(c, "dense_weights")), "private"));
    CHECK(json_equal(json_object_get(j, "tokens"), ref_tokens));
    json_decref(j);
    json_decref(ref);
}

TEST(generate_offload_matches_memory_and_simulate) { check_offload("tiny-olmoe"); }
TEST(generate_offload_deepseek2) { check_offload("tiny-deepseek2"); }
TEST(generate_offload_gpt_oss) { check_offload("tiny-gpt-oss"); }
TEST(generate_offload_glm4moe) { check_offload("tiny-glm4moe"); }

TEST(generate_offload_usage_errors)
{
    const char *m = model("tiny-olmoe");
    char *out, *err;
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --policy lfu", tst_moebench(),
                        m), 2);
    CHECK_CONTAINS(err, "cache size");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --cache-experts 2 "
                                    "--policy belady", tst_moebench(), m), 2);
    CHECK_CONTAINS(err, "--trace-in");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --cache-experts 2 "
                                    "--link warp9", tst_moebench(), m), 2);
    CHECK_CONTAINS(err, "warp9");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --cache-experts 2 "
                                    "--link-copy teleport", tst_moebench(), m), 2);
    CHECK_CONTAINS(err, "teleport");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --cache-experts 2 "
                                    "--pregate-ahead 2", tst_moebench(), m), 2);
    CHECK_CONTAINS(err, "--prefetch pregate");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --cache-experts 2 "
                                    "--prefetch pregate --pregate-ahead 0", tst_moebench(), m), 2);
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --cache-experts 2 "
                                    "--pregate-adaptive 0.5", tst_moebench(), m), 2);
    CHECK_CONTAINS(err, "--prefetch pregate");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --cache-experts 2 "
                                    "--prefetch pregate --pregate-adaptive 1.5", tst_moebench(),
                        m), 2);
    CHECK_CONTAINS(err, "--pregate-adaptive");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --cache-experts 2 "
                                    "--prefetch-correct", tst_moebench(), m), 2);
    CHECK_CONTAINS(err, "needs a prefetcher");
    static const char *const hw[][2] = {
        {"--policy lru --hobbit-weights 1,1,1,1", "goes with --policy hobbit"},
        {"--policy hobbit --hobbit-weights 1,1,1", "is not 4 numbers"},
        {"--policy hobbit --hobbit-weights 1,1,1,1,1", "more than 4"},
        {"--policy hobbit --hobbit-weights 0,0,0,0", "at least one weight"},
        {"--policy hobbit --hobbit-weights 1,x,1,1", "--hobbit-weights"},
    };
    for (size_t i = 0; i < sizeof hw / sizeof hw[0]; i++) {
        CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --cache-experts 2 %s",
                            tst_moebench(), m, hw[i][0]), 2);
        CHECK_CONTAINS(err, hw[i][1]);
        CHECK_EQ_INT(tst_sh(&out, &err, "%s simulate tests/metrics/data/repeat-2x6k3.json "
                            "--cache-experts 2 %s", tst_moebench(), hw[i][0]), 2);
        CHECK_CONTAINS(err, hw[i][1]);
    }
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1 --cache-mb 0.0001",
                        tst_moebench(), m), 2);
    CHECK_CONTAINS(err, "holds no expert");
    CHECK_EQ_INT(tst_sh(&out, &err, "%s generate -m '%s' --tokens 1,2 -n 3 --cache-experts 2",
                        tst_moebench(), m), 0);
    CHECK_CONTAINS(err, "hit rate");
}

/* tiny-olmoe: 4 MoE layers x 16 experts. More slots than experts is an
 * error naming the limit of the scope; a byte budget that holds them all
 * says so. */
TEST(cache_larger_than_the_experts)
{
    const char *m = model("tiny-olmoe");
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s generate -m '%s' --tokens 1 -n 1 --cache-experts 65",
                        tst_moebench(), m), 2);
    CHECK_CONTAINS(err, "--cache-experts 65: in all 64 slots hold every expert (4 MoE layers x"
                        " 16 experts, scope global); give at most 64");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s generate -m '%s' --tokens 1 -n 1 --cache-experts 17"
                        " --cache-scope layer", tst_moebench(), m), 2);
    CHECK_CONTAINS(err, "per layer 16 slots hold every expert");
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s generate -m '%s' --tokens 1 -n 1 --cache-experts 64",
                        tst_moebench(), m), 0);
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s generate -m '%s' --tokens 1 -n 1 --cache-mb 1000",
                        tst_moebench(), m), 0);
    CHECK_CONTAINS(err, "--cache-mb holds every expert (64 slots");
}
