/* test_lua_policy.c — policies written in Lua (harness/probe/lua_policy.c): the
 * example Lua LRU makes exactly the built-in lru's choices, through the
 * simulator and through the engine's tiered store; broken scripts are
 * clear errors. */
#include "tests/test.h"
#include "tests/util/model_util.h"
#include "tests/util/util.h"


static const char *lua_lru = "lua:scripts/lua/policies/lru.lua";

/* The "hits"/"misses" lines of `moebench simulate` text output. */
static char *sim_counts(const char *trace, const char *policy, int cache, const char *scope)
{
    char *out;
    int st = tst_sh(&out, NULL,
                    "%s simulate %s --policy %s --cache-experts %d --cache-scope %s "
                    "| grep -E '^(hits|misses)'",
                    tst_moebench(), trace, policy, cache, scope);
    REQUIRE_MSG(st == 0, "simulate --policy %s exited %d", policy, st);
    return out;
}

TEST(lua_lru_equals_builtin_lru_in_the_simulator)
{
    const char *trace = tst_path("t.moetrace");
    REQUIRE(tst_sh(NULL, NULL,
                   "%s trace synth --layers 3 --experts 16 --top-k 3 --samples 5 --tokens 150 "
                   "--model sticky --stickiness 0.6 --seed 11 -o %s",
                   tst_moebench(), trace) == 0);
    const char *scopes[] = {"layer", "global"};
    for (int s = 0; s < 2; s++)
        for (int c = 1; c <= 16; c += 5) {
            char *a = sim_counts(trace, "lru", c, scopes[s]);
            char *b = sim_counts(trace, lua_lru, c, scopes[s]);
            CHECK_MSG(strcmp(a, b) == 0, "scope %s, %d slots: lru\n%s lua\n%s", scopes[s], c,
                      a, b);
        }
}

TEST(lua_lru_equals_builtin_lru_in_the_engine)
{
    const char *model = tu_write_model("tiny-olmoe", "f32", 5, 0.5, "m.gguf");
    char *ref, *a, *b;
    /* generate --json, then tokens, hits and misses through SQLite's JSON. */
    const char *gen = "%s generate -m %s --tokens 5,9,33,70,71,72 -n 12 --threads 1 --json "
                      "%s >%s 2>/dev/null && sqlite3 :memory: \"select json_extract(readfile("
                      "'%s'), '$.tokens', '$.hits', '$.misses')\"";
    const char *js = tst_path("g.json");
    REQUIRE(tst_sh(&ref, NULL, gen, tst_moebench(), model, "", js, js) == 0);
    REQUIRE(tst_sh(&a, NULL, gen, tst_moebench(), model,
                   "--cache-experts 6 --cache-scope layer --policy lru", js, js) == 0);
    REQUIRE(tst_sh(&b, NULL, gen, tst_moebench(), model,
                   "--cache-experts 6 --cache-scope layer "
                   "--policy lua:scripts/lua/policies/lru.lua", js, js) == 0);
    CHECK_EQ_STR(a, b);
    /* Same tokens as the all-in-memory run (hits/misses are null there). */
    CHECK(strncmp(ref, a, strcspn(ref, "]") + 1) == 0);
    CHECK(strstr(a, "null") == NULL);
}

TEST(broken_lua_policies_are_clear_errors)
{
    const char *trace = tst_path("t.json");
    const char *json = "{\"num_experts\":4,\"top_k\":2,\"samples\":[[[0,1],[2,3],[0,2]]]}";
    tst_write_file(trace, json, strlen(json));
    struct { const char *name, *src, *expect; int status; } cases[] = {
        {"syntax.lua", "return function(cfg) return { victim = end\n", "syntax.lua:1:", 2},
        {"number.lua", "return 42\n", "must return a factory", 2},
        {"novictim.lua", "return function(cfg) return {} end\n", "no victim function", 2},
        {"raises.lua", "return function(cfg) return { victim = function(c) error('boom') end } end\n",
         "raises.lua:1: boom", 1},
        {"outsider.lua", "return function(cfg) return { victim = function(c) return 99 end } end\n",
         "victim: returned key 99, which is not one of the 1 candidates", 1},
        {"text.lua", "return function(cfg) return { victim = function(c) return 'x' end } end\n",
         "victim: returned a string, not a key", 1},
        /* an error in access is access's, not a later "found no victim" */
        {"access.lua", "return function(cfg) return { victim = function(c) return c[1] end,\n"
                       "  access = function(k, p, h) if p > 0 then error('bad access') end end } end\n",
         "access.lua: access: ", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = tst_path(cases[i].name);
        tst_write_file(path, cases[i].src, strlen(cases[i].src));
        char *err;
        int st = tst_sh(NULL, &err, "%s simulate %s --policy lua:%s --cache-experts 1",
                        tst_moebench(), trace, path);
        CHECK_MSG(st == cases[i].status, "%s: exit %d, expected %d", cases[i].name, st,
                  cases[i].status);
        CHECK_CONTAINS(err, cases[i].expect);
    }
    char *err;
    CHECK_EQ_INT(tst_sh(NULL, &err, "%s simulate %s --policy lua:/no/such.lua --cache-experts 1",
                        tst_moebench(), trace), 2);
    CHECK_CONTAINS(err, "/no/such.lua");
}

/* A policy that checks the context it is given: every access's key lies in
 * the layer its position says (cfg.layer_of(key) == cfg.layer_at(pos)), and
 * tokens advance one top_k group at a time; it prints, which must not
 * spoil --json. */
static const char ctx_policy[] =
    "return function(cfg)\n"
    "  print(('ctx layers=%s experts=%s k=%s scope=%s layer=%s'):format(cfg.n_layers,\n"
    "        cfg.n_experts, cfg.top_k, cfg.scope, cfg.layer))\n"
    "  local last, tick, seen = {}, 0, 0\n"
    "  return {\n"
    "    reset = function() seen = 0 end,\n"
    "    access = function(key, pos, hit)\n"
    "      if cfg.n_layers and cfg.layer_of(key) ~= cfg.layer_at(pos) then\n"
    "        error(('key %d is layer %d, pos %d layer %d'):format(key, cfg.layer_of(key),\n"
    "              pos, cfg.layer_at(pos))) end\n"
    "      if cfg.n_layers and cfg.token_of(pos) ~= seen // (cfg.top_k *\n"
    "         (cfg.scope == 'global' and cfg.n_layers or 1)) then error('token') end\n"
    "      seen = seen + 1; tick = tick + 1; last[key] = tick end,\n"
    "    insert = function(key) tick = tick + 1; last[key] = tick end,\n"
    "    victim = function(c)\n"
    "      local best, bt = nil, math.huge\n"
    "      for _, k in ipairs(c) do if last[k] < bt then best, bt = k, last[k] end end\n"
    "      return best end }\n"
    "end\n";

TEST(policy_gets_its_context_and_prints_to_stderr)
{
    const char *pol = tu_write_text("ctx.lua", ctx_policy), *trace = tst_path("t.moetrace");
    const char *model = tu_write_model("tiny-olmoe", "q8_0", 5, 0.5, "m.gguf");
    REQUIRE(tst_sh(NULL, NULL, "%s trace synth --layers 3 --experts 16 --top-k 3 --samples 2"
                   " --tokens 40 --model sticky --stickiness 0.6 --seed 2 -o %s", tst_moebench(),
                   trace) == 0);
    const char *scopes[] = {"global", "layer"};
    for (int s = 0; s < 2; s++) {
        char *out, *err;
        const char *js = tst_path("o.json");
        int st = tst_sh(&out, &err, "%s simulate %s --policy lua:%s --cache-experts 5"
                        " --cache-scope %s --json > %s && sqlite3 :memory: \"select"
                        " json_valid(readfile('%s'))\"", tst_moebench(), trace, pol,
                        scopes[s], js, js);
        CHECK_MSG(st == 0, "simulate %s: %s", scopes[s], err);
        CHECK_EQ_STR(out, "1\n");
        CHECK_CONTAINS(err, s ? "ctx layers=3 experts=16 k=3 scope=layer layer=2"
                              : "ctx layers=3 experts=16 k=3 scope=global layer=nil");
        st = tst_sh(&out, &err, "%s generate -m %s -p 'one two three four five six' -n 5"
                    " --cache-experts 6 --cache-scope %s --policy lua:%s --json > %s && sqlite3"
                    " :memory: \"select json_valid(readfile('%s'))\"", tst_moebench(),
                    model, scopes[s], pol, js, js);
        CHECK_MSG(st == 0, "generate %s: %s", scopes[s], err);
        CHECK_EQ_STR(out, "1\n");
        CHECK_CONTAINS(err, s ? "ctx layers=4 experts=16 k=4 scope=layer layer=3"
                              : "ctx layers=4 experts=16 k=4 scope=global layer=nil");
    }
}

/* lua:PATH in a suite's command resolves beside the suite first, so a
 * suite and its policy move together. */
TEST(policy_path_relative_to_the_suite)
{
    REQUIRE(tst_sh(NULL, NULL, "mkdir -p %s %s", tst_path("s"), tst_path("elsewhere")) == 0);
    tu_write_text("s/mine.lua", "return function(cfg) return { victim = function(c)\n"
                                "  return c[1] end } end\n");
    const char *trace = tst_path("s/t.json");
    tst_write_file(trace, "{\"num_experts\":4,\"top_k\":2,\"samples\":[[[0,1],[2,3],[0,2]]]}",
                   59);
    char src[512];
    snprintf(src, sizeof src, "suite{name='rel'}\n"
             "experiment{name='p', kind='command', argv={'simulate', '%s', '--policy',"
             " 'lua:mine.lua', '--cache-experts', '2'}}\n", trace);
    tu_write_text("s/rel.lua", src);
    char *err;
    int st = tst_sh(NULL, &err, "cd %s && %s run ../s/rel.lua --db r.db -q",
                    tst_path("elsewhere"), tu_mb());
    CHECK_MSG(st == 0, "exit %d: %s", st, err);
    CHECK_EQ_STR(tu_q1(tst_path("elsewhere/r.db"), "select status from experiment"), "ok");
}
